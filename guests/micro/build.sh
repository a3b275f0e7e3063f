#!/usr/bin/env bash
# Builds the micro-guests into guests/out/ with the host toolchain (gcc -ffreestanding, as, ld):
# flat images loaded at guest address 0 by `vgpu run --raw`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${GUESTS_OUT:-$here/../out}
mkdir -p "$out"
CFLAGS=(-ffreestanding -fno-pic -fno-pie -fno-stack-protector -fno-asynchronous-unwind-tables
        -mno-red-zone -mgeneral-regs-only -mcmodel=small -O2 -Wall -Wextra -Wno-missing-field-initializers -Werror -nostdlib -m64)

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

build_hello() {
  local src=$here/hello tmp g
  tmp=$(mktemp -d)
  for g in hello pio-bench; do
    as --32 -o "$tmp/$g.o" "$src/$g.S"
    ld -m elf_i386 -Ttext=0 -e _start --oformat binary -o "$out/$g.bin" "$tmp/$g.o"
    echo "built $out/$g.bin ($(stat -c %s "$out/$g.bin") bytes)"
  done
  # A tiny bzImage (64-bit entry) for the Linux boot path of `vgpu run --kernel`.
  as --64 -o "$tmp/tiny-bzimage.o" "$src/tiny-bzimage.S"
  ld -m elf_x86_64 -Ttext=0 -e _start --oformat binary -o "$out/tiny-bzimage" "$tmp/tiny-bzimage.o"
  echo "built $out/tiny-bzimage ($(stat -c %s "$out/tiny-bzimage") bytes)"
  rm -rf "$tmp"
  # The seed-style minimal C VMM, the baseline of `vgpu bench pio`.
  gcc -O2 -Wall -Wextra -Werror -o "$out/minivmm" "$here/minivmm.c"
  echo "built $out/minivmm"
}

# Other micro-guests (hello, ...) add their build steps here.
for d in "$here"/*/; do
  case "$(basename "$d")" in
    gpu) build_gpu ;;
    hello) build_hello ;;
  esac
done
