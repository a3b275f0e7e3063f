/* A tiny "bzImage" for `vgpu run --kernel` on any KVM: a boot-protocol 2.15 setup header and a
 * 64-bit entry point (startup_64 at +0x200) that prints the command line found through the
 * zero page (RSI) on COM1, a newline, then the initramfs's bytes (if any), then halts with
 * interrupts off, as Linux's halt does.
 * Checks the Linux boot path (long mode, page tables, zero page, serial, power-off by halt)
 * where a stock kernel cannot run. */
        .text
        .code64
        .globl _start
_start:
        .org    0x1f1
        .byte   1                       /* setup_sects: one sector after the boot sector */
        .org    0x1fe
        .word   0xaa55                  /* boot_flag */
        .org    0x202
        .ascii  "HdrS"                  /* header */
        .word   0x020f                  /* version 2.15 */
        .org    0x211
        .byte   0x01                    /* loadflags: LOADED_HIGH */
        .org    0x214
        .long   0x100000                /* code32_start */
        .org    0x22c
        .long   0x7fffffff              /* initrd_addr_max */
        .org    0x236
        .word   0x0003                  /* xloadflags: KERNEL_64, CAN_BE_LOADED_ABOVE_4G */
        .org    0x238
        .long   2047                    /* cmdline_size */

        /* The protected-mode kernel starts at file offset 0x400 (loaded at 1 MiB); its 64-bit
         * entry is 0x200 further. */
        .org    0x600
startup_64:
        mov     0x228(%rsi), %ebx       /* boot_params.hdr.cmd_line_ptr */
        mov     $0x3f8, %dx
1:      movb    (%rbx), %al
        test    %al, %al
        jz      2f
        outb    %al, %dx
        inc     %rbx
        jmp     1b
2:      mov     $'\n', %al
        outb    %al, %dx
        mov     0x218(%rsi), %ebx       /* boot_params.hdr.ramdisk_image */
        mov     0x21c(%rsi), %ecx       /* boot_params.hdr.ramdisk_size */
4:      test    %ecx, %ecx
        jz      5f
        movb    (%rbx), %al
        outb    %al, %dx
        inc     %rbx
        dec     %ecx
        jmp     4b
5:      cli
3:      hlt
        jmp     3b
