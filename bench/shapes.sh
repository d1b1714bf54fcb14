# The benchmark shapes of docs/ANCHORS (sourced by bench/engine_bench.sh and bench/engine_ab.sh):
# shape_flags NAME prints the `slm init` flags of s15m, s110m or q500m; fails for any other name.
shape_flags() {
  case $1 in
    s15m) echo "--dim 288 --layers 6 --heads 6 --ffn 768" ;;
    s110m) echo "--dim 768 --layers 12 --heads 12 --ffn 2048" ;;
    q500m) echo "--dim 896 --layers 24 --heads 14 --kv-heads 2 --ffn 4864" ;;
    *) return 1 ;;
  esac
}
