/* The merge passes of Felzenszwalb-Huttenlocher graph segmentation over edges already sorted, written so that
 * its labels equal scikit-image's `felzenszwalb` bit for bit (superpixels.py builds the same 8-connected costs
 * and sorts them with the same numpy call). Why compiled: the temporal prior segments every frame at three
 * levels; two levels share a smoothing and so one sort, and scikit-image's call rebuilds the edge list, its
 * sort and the relabelling per level. The Python fallback in superpixels.py is scikit-image itself.
 *
 * Conventions that make the output identical:
 *   - an edge joins two segments when cost < min(Int(C0) + k/|C0|, Int(C1) + k/|C1|), each bound rounded to
 *     single precision first (scikit-image keeps them in C floats), and Int(C) becomes the joining cost;
 *   - a second pass over the same order joins any two segments one of which is smaller than min_size;
 *   - labels are numbered by each segment's first pixel in raster order.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>

static int32_t find_root(int32_t *parent, int32_t n) {
    while (parent[n] != n) {
        parent[n] = parent[parent[n]]; /* path halving */
        n = parent[n];
    }
    return n;
}

/* The two pixels of edge e in scikit-image's order of blocks: right, down, down-right, up-right. */
static void edge_pixels(int32_t e, int32_t h, int32_t w, int32_t *a, int32_t *b) {
    int32_t n_right = h * (w - 1), n_down = (h - 1) * w, n_diag = (h - 1) * (w - 1), r, c;
    if (e < n_right) {
        r = e / (w - 1); c = e - r * (w - 1);
        *a = r * w + c + 1; *b = r * w + c;
        return;
    }
    e -= n_right;
    if (e < n_down) { *a = e + w; *b = e; return; }
    e -= n_down;
    r = (e % n_diag) / (w - 1); c = (e % n_diag) - r * (w - 1);
    if (e < n_diag) { *a = (r + 1) * w + c + 1; *b = r * w + c; }
    else { *a = r * w + c + 1; *b = (r + 1) * w + c; }
}

/* pixels: 2 * n_edges; parent, size, internal: one per pixel */
static void segment(const int64_t *order, const double *costs, int32_t n_edges, int32_t h, int32_t w,
                    double scale, int64_t min_size, int32_t *pixels, int32_t *parent, int32_t *size,
                    double *internal, int64_t *labels) {
    int32_t n = h * w, i, a, b, ra, rb, root, next_label = 0;
    for (i = 0; i < n; i++) { parent[i] = i; size[i] = 1; internal[i] = 0.0; }
    for (i = 0; i < n_edges; i++) {
        double cost = costs[order[i]];
        float bound_a, bound_b;
        edge_pixels((int32_t)order[i], h, w, &a, &b);
        pixels[2 * i] = a; pixels[2 * i + 1] = b; /* kept for the second pass */
        ra = find_root(parent, a); rb = find_root(parent, b);
        if (ra == rb) continue;
        bound_a = (float)(internal[ra] + scale / (double)size[ra]);
        bound_b = (float)(internal[rb] + scale / (double)size[rb]);
        if (cost < (double)(bound_a < bound_b ? bound_a : bound_b)) {
            root = ra < rb ? ra : rb;
            parent[ra + rb - root] = root;
            size[root] = size[ra] + size[rb];
            internal[root] = cost;
        }
    }
    for (i = 0; i < n_edges; i++) {
        ra = find_root(parent, pixels[2 * i]); rb = find_root(parent, pixels[2 * i + 1]);
        if (ra == rb || (size[ra] >= min_size && size[rb] >= min_size)) continue;
        root = ra < rb ? ra : rb;
        parent[ra + rb - root] = root;
        size[root] = size[ra] + size[rb];
    }
    /* `size` is free now: it maps each root to its label, -1 until the root's first pixel is met */
    for (i = 0; i < n; i++) size[i] = -1;
    for (i = 0; i < n; i++) {
        root = find_root(parent, i);
        if (size[root] < 0) size[root] = next_label++;
        labels[i] = size[root];
    }
}

static PyObject *merge_sorted_edges(PyObject *self, PyObject *args) {
    Py_buffer order, costs, labels;
    Py_ssize_t height, width, min_size;
    double scale;
    int64_t n, n_edges;
    int32_t *pixels, *parent, *size;
    double *internal;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*y*w*nndn", &order, &costs, &labels, &height, &width, &scale, &min_size))
        return NULL;
    n = (int64_t)height * width;
    n_edges = 2 * n - height - width + 2 * ((int64_t)height - 1) * (width - 1);
    if (height < 2 || width < 2 || n_edges > INT32_MAX || order.len != n_edges * 8 || costs.len != n_edges * 8
        || labels.len != n * 8) {
        PyErr_SetString(PyExc_ValueError, "merge_sorted_edges: buffer sizes do not match the image size");
        goto fail;
    }
    pixels = malloc(2 * n_edges * sizeof(int32_t));
    parent = malloc(n * sizeof(int32_t));
    size = malloc(n * sizeof(int32_t));
    internal = malloc(n * sizeof(double));
    if (!pixels || !parent || !size || !internal) {
        free(pixels); free(parent); free(size); free(internal);
        PyErr_NoMemory();
        goto fail;
    }
    Py_BEGIN_ALLOW_THREADS
    segment(order.buf, costs.buf, (int32_t)n_edges, (int32_t)height, (int32_t)width, scale, min_size, pixels,
            parent, size, internal, labels.buf);
    Py_END_ALLOW_THREADS
    free(pixels); free(parent); free(size); free(internal);
    PyBuffer_Release(&order); PyBuffer_Release(&costs); PyBuffer_Release(&labels);
    Py_RETURN_NONE;
fail:
    PyBuffer_Release(&order); PyBuffer_Release(&costs); PyBuffer_Release(&labels);
    return NULL;
}

static PyMethodDef methods[] = {
    {"merge_sorted_edges", merge_sorted_edges, METH_VARARGS,
     "merge_sorted_edges(order, costs, labels, height, width, scale, min_size): int64 order, float64 costs, "
     "int64 labels filled in place (scale already divided by 255)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_felzenszwalb", NULL, -1, methods};

PyMODINIT_FUNC PyInit__felzenszwalb(void) { return PyModule_Create(&module); }
