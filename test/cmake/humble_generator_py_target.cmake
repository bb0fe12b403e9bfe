# Test only (test/test_package.py), passed with -DCMAKE_PROJECT_INCLUDE_BEFORE: makes this venv
# configure like Humble and Jazzy, where rosidl leaves INTERFACE_INCLUDE_DIRECTORIES of the
# package's generated <pkg>__rosidl_generator_py target unset. Deferred before project(), it runs
# at the end of the directory ahead of anything deferred later (cmake/pypi_wheels_fix.cmake).
function(humble_unset_generator_py_include_dirs)
  set_property(TARGET ${PROJECT_NAME}__rosidl_generator_py PROPERTY INTERFACE_INCLUDE_DIRECTORIES)
endfunction()
cmake_language(DEFER CALL humble_unset_generator_py_include_dirs)
