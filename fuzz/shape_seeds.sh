#!/bin/sh
# Write the safetensors seeds whose sizes overflow (issue 20 item 7) into fuzz/corpus:
# shapes and offsets at which element counts, byte counts and strides exceed int64. Run
# once; the files are committed. The first is the 104-byte file of the report (header as
# Python's json.dumps writes it), on which sg__contiguous_strides overflowed.
set -eu
dir=${1:-$(cd "$(dirname "$0")" && pwd)/corpus}
mkdir -p "$dir"

# seed NAME HEADER [DATA_BYTES]: 8-byte little-endian header length, the header padded
# with spaces to a multiple of 8, then DATA_BYTES zero bytes.
seed() {
    h=$2
    while [ $(( ${#h} % 8 )) -ne 0 ]; do h="$h "; done
    n=${#h}
    {
        i=0
        while [ $i -lt 8 ]; do
            # shellcheck disable=SC2059 # the format is the octal escape of one byte
            printf "\\$(printf %03o $(( (n >> (8 * i)) & 255 )))"
            i=$((i + 1))
        done
        printf '%s' "$h"
        head -c "${3:-0}" /dev/zero
    } >"$dir/$1"
}

seed seed_ovf_shape_0_2p40_2p40 \
    '{"a": {"dtype": "F32", "shape": [0, 1099511627776, 1099511627776], "data_offsets": [0, 0]}}'
seed seed_ovf_shape_2p40_2p40_0 \
    '{"a":{"dtype":"F64","shape":[1099511627776,1099511627776,0],"data_offsets":[0,0]}}'
seed seed_ovf_shape_2p40_2p40 \
    '{"a":{"dtype":"F32","shape":[1099511627776,1099511627776],"data_offsets":[0,0]}}'
seed seed_ovf_shape_bytes \
    '{"a":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,8]}}' 8
seed seed_ovf_shape_int64_max \
    '{"a":{"dtype":"F32","shape":[9223372036854775807],"data_offsets":[0,4]}}' 4
seed seed_ovf_offsets_huge \
    '{"a":{"dtype":"F32","shape":[1],"data_offsets":[9223372036854775804,9223372036854775808]}}' 4
seed seed_ovf_offsets_2p64 \
    '{"a":{"dtype":"F32","shape":[1],"data_offsets":[18446744073709551612,18446744073709551616]}}' 4
seed seed_ovf_offsets_2p32 \
    '{"a":{"dtype":"F32","shape":[1],"data_offsets":[4294967296,4294967300]}}' 4
seed seed_ovf_offsets_neg \
    '{"a":{"dtype":"F32","shape":[1],"data_offsets":[-1,3]}}' 4
seed seed_dtype_i64_i32 \
    '{"__metadata__":{"step":"9223372036854775807"},"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},"b":{"dtype":"I32","shape":[1],"data_offsets":[8,12]}}' 12
