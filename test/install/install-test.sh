#!/usr/bin/env bash
# The relocatable install, end to end: `cmake --install` into a temporary
# prefix, the prefix moved elsewhere, then the installed pinferc compiles a
# tiny generated model for the CPU target and the executable runs and gives
# the dense reference's tokens. The host compiler is wrapped to record its
# command line, which shows where the runtime was taken from: the moved
# prefix, and the build tree once the installed library is removed.
#
# usage: install-test.sh CMAKE BUILD_DIR VOCAB_GGUF
set -euo pipefail
CMAKE=$1
BUILD=$2
VOCAB=$3
TMP=$(mktemp -d /tmp/pinfer-install-test-XXXXXX)
trap 'rm -rf "$TMP"' EXIT

fail() { echo "install-test: FAIL: $*" >&2; exit 1; }

"$CMAKE" --install "$BUILD" --prefix "$TMP/first" >"$TMP/install.log" \
  || { cat "$TMP/install.log"; fail "cmake --install"; }
mv "$TMP/first" "$TMP/prefix"
P=$TMP/prefix
for f in bin/pinferc bin/pinfer-opt bin/pinfer-genmodel \
         lib/pinfer/libpinfer_runtime.a include/pinfer/runtime/exec_main.h \
         include/pinfer/runtime/program.h; do
  [ -f "$P/$f" ] || fail "$f is not installed"
done

# The host compiler, recording its arguments.
cat >"$TMP/cxx" <<WRAP
#!/usr/bin/env bash
printf '%s\n' "\$@" >"$TMP/cxx.args"
exec ${CXX:-c++} "\$@"
WRAP
chmod +x "$TMP/cxx"

"$P/bin/pinfer-genmodel" --preset tiny --vocab "$VOCAB" -o "$TMP/tiny.gguf" \
  >/dev/null
CXX=$TMP/cxx "$P/bin/pinferc" "$TMP/tiny.gguf" --target cpu --sparsity exact \
  -o "$TMP/tiny" || fail "the installed pinferc could not compile"
grep -qx "$P/lib/pinfer/libpinfer_runtime.a" "$TMP/cxx.args" \
  || fail "not linked with the installed runtime: $(tr '\n' ' ' <"$TMP/cxx.args")"
grep -qx -- "-I$P/include/pinfer" "$TMP/cxx.args" \
  || fail "not compiled with the installed headers"

PROMPT="Once upon a time"
"$TMP/tiny" -p "$PROMPT" -n 6 --temp 0 -t 2 --json >"$TMP/exe.json" 2>/dev/null \
  || fail "the executable did not run"
"$P/bin/pinferc" run "$TMP/tiny.gguf" -p "$PROMPT" -n 6 --temp 0 -t 2 --json \
  >"$TMP/ref.json" 2>/dev/null || fail "pinferc run"
tokens() { grep -o '"tokens":\[[0-9,]*\]' "$1" | head -1; }
[ -n "$(tokens "$TMP/exe.json")" ] || fail "no tokens in $(cat "$TMP/exe.json")"
[ "$(tokens "$TMP/exe.json")" = "$(tokens "$TMP/ref.json")" ] \
  || fail "tokens $(tokens "$TMP/exe.json"), reference $(tokens "$TMP/ref.json")"
[ "$(tokens "$TMP/exe.json" | tr -cd , | wc -c)" = 5 ] || fail "not 6 tokens"

# Without the installed library, the build tree's is used.
rm "$P/lib/pinfer/libpinfer_runtime.a"
CXX=$TMP/cxx "$P/bin/pinferc" "$TMP/tiny.gguf" --target cpu --sparsity exact \
  -o "$TMP/tiny2" 2>/dev/null || fail "no fallback to the build tree"
grep -q "^$BUILD/.*libpinfer_runtime.a\$" "$TMP/cxx.args" \
  || fail "fallback not to the build tree: $(tr '\n' ' ' <"$TMP/cxx.args")"
echo "install-test: ok ($P)"
