"""The SCNN network family: VGG16 backbone, dilated FCN, cascade, the variant table and the loss."""
