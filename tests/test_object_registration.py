"""register_keras_serializable and its registry, as Keras's."""

import pytest

from cadence import keras
from cadence.object_registration import get_custom_objects
from cadence.utils import (
    custom_object_scope,
    get_registered_name,
    get_registered_object,
    register_keras_serializable,
)


def test_register_class_and_function():
    @register_keras_serializable("my_package")
    class MyThing:
        def get_config(self):
            return {}

    @keras.utils.register_keras_serializable(package="fns", name="double")
    def twice(x):
        return 2 * x

    assert get_registered_object("my_package>MyThing") is MyThing
    assert get_registered_name(MyThing) == "my_package>MyThing"
    assert get_registered_object("fns>double") is twice and get_registered_name(twice) == "fns>double"
    assert get_custom_objects()["fns>double"] is twice


def test_default_package_is_custom_and_unregistered_names():
    @register_keras_serializable()
    def halve(x):
        return x / 2

    def other(x):
        return x

    assert get_registered_object("Custom>halve") is halve
    assert get_registered_name(other) == "other"
    assert get_registered_object("Custom>other") is None
    assert get_registered_object("x", custom_objects={"x": other}) is other
    assert get_registered_object("y", module_objects={"y": halve}) is halve


def test_class_without_get_config_is_refused():
    with pytest.raises(ValueError, match=r"^Cannot register a class that does not have a "
                       r"get_config\(\) method\.$"):
        @register_keras_serializable()
        class Plain:
            pass


def test_custom_object_scope():
    def f(x):
        return x

    with custom_object_scope({"f": f}):
        assert get_registered_object("f") is f
        with keras.utils.CustomObjectScope({"g": len}):
            assert get_registered_object("f") is f and get_registered_object("g") is len
        assert get_registered_object("g") is None
    assert get_registered_object("f") is None
