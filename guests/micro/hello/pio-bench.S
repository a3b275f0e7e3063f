/* Port-I/O exit benchmark: ITERATIONS (patched into the image's last 4 bytes by the
 * benchmark, 32-bit little-endian) writes to port 0x80, then "ok\n" on port 0xf1 and HLT.
 * Real mode at address 0, as `vgpu run --raw` and guests/micro/minivmm load it. */
        .code16
        .text
        .globl _start
_start:
        cli
        xor     %ax, %ax
        mov     %ax, %ds
        mov     %ax, %ss
        mov     $0x7000, %sp
        mov     iterations, %ecx
        test    %ecx, %ecx
        jz      2f
1:      out     %al, $0x80
        dec     %ecx
        jnz     1b
2:      mov     $'o', %al
        out     %al, $0xf1
        mov     $'k', %al
        out     %al, $0xf1
        mov     $'\n', %al
        out     %al, $0xf1
3:      hlt
        jmp     3b
        .balign 4
iterations:
        .long   1000
