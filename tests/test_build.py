"""The compiled extension loads and reports how it was built."""

import os

import pydetectron
import pydetectron._C as C


def test_extension_loads_and_reports_build():
    info = C.build_info()
    assert info.startswith("torch ")
    assert ("no cuda" in info) == (not C.compiled_with_cuda())


def test_package_is_importable_from_lib():
    assert os.path.basename(os.path.dirname(pydetectron.__file__)) == "pydetectron"
