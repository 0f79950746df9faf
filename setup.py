"""Only the compiled part of the package; everything else is declared in pyproject.toml.

The Felzenszwalb merge of the temporal prior (scnn_lightning/motion/_felzenszwalb.c) is optional: where no C
compiler is available the package still installs and superpixels.py uses scikit-image's segmentation, which
gives the same labels more slowly.
"""

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    def run(self):
        try:  # finding the compiler and compiling both happen in here
            super().run()
        except Exception as error:  # noqa: BLE001 - any compiler failure leaves the pure-Python path
            print(f"warning: the compiled Felzenszwalb merge was not built ({error}); using scikit-image's")


setup(ext_modules=[Extension("scnn_lightning.motion._felzenszwalb", ["scnn_lightning/motion/_felzenszwalb.c"],
                             extra_compile_args=["-O2"])],
      cmdclass={"build_ext": OptionalBuildExt})
