/* The common case of the policy's torch-function mode, in C (see kinkgrad/_policy.py, the only caller).
 *
 * While a policy or monitor is active, PyTorch hands every torch call to the mode's __torch_function__:
 * 57 calls in a training step of an MLP, of which 2 are kink ops. The other 55 (linear layers, the loss,
 * the optimizer's reads of .grad...) only need to run as they are. Through a Python method each such
 * call cost about 2 us more than without a mode; through call() below, about 0.9 us (the rest is
 * PyTorch's own mode dispatch). call() runs a function as it is when it has no route and the mode lets
 * it; every other call goes to the Python method, with the same arguments.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *routes;   /* dict: id(func) -> route (the registry's entry points) */
static PyObject *fallback; /* the Python __torch_function__, called as fallback(mode, func, types, args, kwargs) */
static PyObject *accessor; /* the type of attribute accessors (x.grad, x.shape: bound afresh on every call) */
static PyObject *plain_name;

static PyObject *py_configure(PyObject *self, PyObject *args) {
    PyObject *r, *f, *a;
    if (!PyArg_ParseTuple(args, "O!OO!", &PyDict_Type, &r, &f, &PyType_Type, &a))
        return NULL;
    Py_INCREF(r);
    Py_INCREF(f);
    Py_INCREF(a);
    Py_XSETREF(routes, r);
    Py_XSETREF(fallback, f);
    Py_XSETREF(accessor, a);
    Py_RETURN_NONE;
}

/* Whether the mode runs func as it is: its attribute "plain" is None (every function without a route),
 * or a dict holding id(func) (a strict policy's: the functions it has seen and found smooth, and every
 * attribute accessor). 1: yes, 0: no, -1: an error. */
static int runs_plain(PyObject *mode, PyObject *func, PyObject *key) {
    PyObject *plain = PyObject_GetAttr(mode, plain_name);
    if (plain == NULL)
        return -1;
    int yes;
    if (plain == Py_None)
        yes = 1;
    else if (!PyDict_Check(plain))
        yes = 0;
    else if ((PyObject *)Py_TYPE(func) == accessor)
        yes = 1;
    else
        yes = PyDict_GetItemWithError(plain, key) != NULL ? 1 : (PyErr_Occurred() ? -1 : 0);
    Py_DECREF(plain);
    return yes;
}

static PyObject *py_call(PyObject *self, PyObject *const *argv, Py_ssize_t argc) {
    if (routes == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "kinkgrad._dispatch.call before configure()");
        return NULL;
    }
    if (argc == 4 || argc == 5) {
        PyObject *mode = argv[0], *func = argv[1], *args = argv[3];
        PyObject *kwargs = argc == 5 ? argv[4] : NULL;
        if (kwargs == Py_None || (kwargs != NULL && PyDict_CheckExact(kwargs) && PyDict_GET_SIZE(kwargs) == 0))
            kwargs = NULL;
        if (PyTuple_CheckExact(args) && (kwargs == NULL || PyDict_CheckExact(kwargs))) {
            PyObject *key = PyLong_FromVoidPtr(func);
            if (key == NULL)
                return NULL;
            int yes = PyDict_GetItemWithError(routes, key) != NULL ? 0 : (PyErr_Occurred() ? -1 : 1);
            if (yes == 1)
                yes = runs_plain(mode, func, key);
            Py_DECREF(key);
            if (yes < 0)
                return NULL;
            if (yes)
                return PyObject_Call(func, args, kwargs);
        }
    }
    return PyObject_Vectorcall(fallback, argv, argc, NULL);
}

static PyMethodDef methods[] = {
    {"configure", py_configure, METH_VARARGS,
     "configure(routes, fallback, accessor): the routes by id, the Python __torch_function__, and the "
     "type of attribute accessors"},
    {"call", (PyCFunction)(void (*)(void))py_call, METH_FASTCALL,
     "call(mode, func, types, args, kwargs=None): func(*args, **kwargs) when func has no route and "
     "mode.plain lets it run as it is, else fallback(mode, func, types, args, kwargs)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, .m_name = "_dispatch", .m_size = -1, .m_methods = methods};

/* Bumped with every change to a function's arguments or meaning (kinkgrad/_policy.py ignores a build of
 * another version). */
#define VERSION 1

PyMODINIT_FUNC PyInit__dispatch(void) {
    plain_name = PyUnicode_InternFromString("plain");
    if (plain_name == NULL)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && PyModule_AddIntConstant(m, "VERSION", VERSION) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
