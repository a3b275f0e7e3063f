#!/usr/bin/env bash
# Builds the micro-guests into guests/out/ with the host toolchain (gcc -ffreestanding, as, ld):
# flat images loaded at guest address 0 by `vgpu run --raw`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${GUESTS_OUT:-$here/../out}
mkdir -p "$out"
CFLAGS=(-ffreestanding -fno-pic -fno-pie -fno-stack-protector -fno-asynchronous-unwind-tables
        -mno-red-zone -mcmodel=small -O2 -Wall -Wextra -Wno-missing-field-initializers -Werror -nostdlib -m64)

build_gpu() {
  local src=$here/gpu tmp
  tmp=$(mktemp -d)
  gcc "${CFLAGS[@]}" -c "$src/boot.S" -o "$tmp/boot.o"
  gcc "${CFLAGS[@]}" -c "$src/gpu.c" -o "$tmp/gpu.o"
  ld -m elf_x86_64 -nostdlib -static -no-pie --no-warn-rwx-segments -T "$src/link.ld" "$tmp/boot.o" "$tmp/gpu.o" -o "$tmp/gpu.elf"
  objcopy -O binary "$tmp/gpu.elf" "$out/gpu.bin"
  rm -rf "$tmp"
  echo "built $out/gpu.bin ($(stat -c %s "$out/gpu.bin") bytes)"
}

# Other micro-guests (hello, ...) add their build steps here.
for d in "$here"/*/; do
  case "$(basename "$d")" in
    gpu) build_gpu ;;
  esac
done
