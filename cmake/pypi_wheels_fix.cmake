# Venv world only (the Makefile passes it with -DCMAKE_PROJECT_INCLUDE=...): makes rosidl
# packages build against PyPI's ROS 2 wheels. A ROS install (colcon on Humble, Jazzy) never
# reads this file; the package's CMakeLists.txt stays plain ament_cmake + rosidl.
#
# Two fixes, applied at the end of the project's top directory (cmake_language(DEFER)), when
# rosidl_generate_interfaces() has created every target:
# 1. The wheels export *__rosidl_generator_py targets whose include directories name the
#    Python they were built with (/opt/python/...), which does not exist here: point them at
#    this machine's Python and NumPy.
# 2. rosidl gives the package's own generated Python library the Python and NumPy include
#    directories as PUBLIC ones and exports them; when that Python is a venv inside the source
#    tree (the Makefile's .venv), CMake refuses to export a source-tree path: keep such paths
#    for the build only.
# Both only touch a property that is set; where rosidl leaves it unset (Humble, Jazzy) they
# do nothing.
if(CMAKE_VERSION VERSION_LESS 3.21)
  message(FATAL_ERROR "cmake/pypi_wheels_fix.cmake needs CMake >= 3.21 (IMPORTED_TARGETS), found ${CMAKE_VERSION}")
endif()

function(pypi_wheels_fix_generator_py_targets)
  find_package(Python3 REQUIRED COMPONENTS Interpreter Development NumPy)
  get_property(_imported DIRECTORY "${CMAKE_CURRENT_SOURCE_DIR}" PROPERTY IMPORTED_TARGETS)
  foreach(_target IN LISTS _imported)
    if(NOT _target MATCHES "__rosidl_generator_py$")
      continue()
    endif()
    get_target_property(_dirs ${_target} INTERFACE_INCLUDE_DIRECTORIES)
    if(_dirs AND "${_dirs}" MATCHES "/opt/python/")
      list(FILTER _dirs EXCLUDE REGEX "^/opt/python/")
      list(APPEND _dirs ${Python3_INCLUDE_DIRS} ${Python3_NumPy_INCLUDE_DIRS})
      set_target_properties(${_target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_dirs}")
    endif()
  endforeach()

  set(_own "${PROJECT_NAME}__rosidl_generator_py")
  if(NOT TARGET ${_own})
    return()
  endif()
  get_target_property(_dirs ${_own} INTERFACE_INCLUDE_DIRECTORIES)
  if(NOT _dirs)
    return()
  endif()
  set(_fixed "")
  foreach(_dir IN LISTS _dirs)
    if(_dir MATCHES "^${CMAKE_SOURCE_DIR}/")
      list(APPEND _fixed "$<BUILD_INTERFACE:${_dir}>")
    else()
      list(APPEND _fixed "${_dir}")
    endif()
  endforeach()
  set_target_properties(${_own} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_fixed}")
endfunction()

# project() includes this file in every directory that calls project(); fix the top one once.
if(CMAKE_CURRENT_SOURCE_DIR STREQUAL CMAKE_SOURCE_DIR)
  get_property(_pypi_wheels_fix_deferred GLOBAL PROPERTY PYPI_WHEELS_FIX_DEFERRED)
  if(NOT _pypi_wheels_fix_deferred)
    set_property(GLOBAL PROPERTY PYPI_WHEELS_FIX_DEFERRED TRUE)
    cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL pypi_wheels_fix_generator_py_targets)
  endif()
endif()
