/* The seed's example guest: real mode at address 0, prints a line on port 0xf1, then halts. */
        .code16
        .text
        .globl _start
_start:
        cli
        xor     %ax, %ax
        mov     %ax, %ds
        mov     %ax, %ss
        mov     $0x7000, %sp
        mov     $msg, %si
        cld
1:      lodsb
        test    %al, %al
        jz      2f
        out     %al, $0xf1
        jmp     1b
2:      hlt
        jmp     2b

msg:    .asciz  "Hello from the micro-guest!\n"
