# lit configuration for pinferc: FileCheck tests of the dialect, the passes
# and the command-line tools.
import os
import lit.formats

config.name = "pinferc"
config.test_format = lit.formats.ShTest(execute_external=False)
config.suffixes = [".mlir", ".test"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.pinfer_obj_root, "test", "lit")
config.excludes = ["CMakeLists.txt", "lit.cfg.py", "lit.site.cfg.py.in", "Inputs"]

tool_dirs = [
    os.path.join(config.pinfer_obj_root, "tools", "pinfer-opt"),
    os.path.join(config.pinfer_obj_root, "tools", "pinferc"),
    os.path.join(config.pinfer_obj_root, "tools", "genmodel"),
    config.llvm_tools_dir,
]
config.environment["PATH"] = os.pathsep.join(tool_dirs + [config.environment.get("PATH", "")])
config.environment["FILECHECK_OPTS"] = "-enable-var-scope --allow-unused-prefixes=false"
config.substitutions.append(("%fixtures", config.pinfer_fixtures_dir))
config.substitutions.append(("%srcroot", config.pinfer_src_root))
if config.pinfer_have_nvrtc:
    config.available_features.add("nvrtc")
