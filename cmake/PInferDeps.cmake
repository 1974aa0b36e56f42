# Every external dependency is found here, once. The LLVM/MLIR major version
# is pinned in this one place.
set(PINFER_LLVM_MAJOR 19)

find_package(MLIR CONFIG
  HINTS /usr/lib/llvm-${PINFER_LLVM_MAJOR}/lib/cmake/mlir)
if(NOT MLIR_FOUND)
  message(FATAL_ERROR "pinferc needs MLIR ${PINFER_LLVM_MAJOR} "
    "(Debian: libmlir-${PINFER_LLVM_MAJOR}-dev mlir-${PINFER_LLVM_MAJOR}-tools); "
    "run scripts/install-deps.sh")
endif()
if(NOT LLVM_VERSION_MAJOR EQUAL PINFER_LLVM_MAJOR)
  message(FATAL_ERROR "pinferc is pinned to LLVM/MLIR ${PINFER_LLVM_MAJOR}, "
    "found ${LLVM_PACKAGE_VERSION} at ${LLVM_DIR}; point MLIR_DIR at "
    "/usr/lib/llvm-${PINFER_LLVM_MAJOR}/lib/cmake/mlir")
endif()
message(STATUS "pinferc: MLIR ${LLVM_PACKAGE_VERSION} from ${MLIR_DIR}")

list(APPEND CMAKE_MODULE_PATH "${MLIR_CMAKE_DIR}" "${LLVM_CMAKE_DIR}")
include(TableGen)
include(AddLLVM)
include(AddMLIR)
include_directories(SYSTEM ${LLVM_INCLUDE_DIRS} ${MLIR_INCLUDE_DIRS})
separate_arguments(PINFER_LLVM_DEFS NATIVE_COMMAND ${LLVM_DEFINITIONS})
add_definitions(${PINFER_LLVM_DEFS})

# Z3 4.8 ships no CMake config.
find_path(Z3_INCLUDE_DIR z3++.h)
find_library(Z3_LIBRARY z3)
if(NOT Z3_INCLUDE_DIR OR NOT Z3_LIBRARY)
  message(FATAL_ERROR "pinferc needs Z3 (Debian: libz3-dev)")
endif()

find_package(CLI11 CONFIG REQUIRED)
find_package(GTest REQUIRED)
find_package(Threads REQUIRED)

# NVRTC is optional: without it only --target cpu can be compiled for.
find_package(CUDAToolkit QUIET)
if(CUDAToolkit_FOUND AND TARGET CUDA::nvrtc)
  set(PINFER_HAVE_NVRTC ON)
  message(STATUS "pinferc: NVRTC ${CUDAToolkit_VERSION} found; GPU targets enabled")
else()
  set(PINFER_HAVE_NVRTC OFF)
  message(STATUS "pinferc: NVRTC not found; only --target cpu will be built")
endif()

set(PINFER_LIT ${LLVM_TOOLS_BINARY_DIR}/../build/utils/lit/lit.py)
if(NOT EXISTS ${PINFER_LIT})
  find_program(PINFER_LIT NAMES lit llvm-lit REQUIRED)
endif()
find_package(Python3 REQUIRED COMPONENTS Interpreter)
