/* Entry of the virtio-gpu micro-guest: loaded at guest address 0 and started in real mode at
 * 0000:0000 (vgpu run --raw). Switches to 32-bit protected mode, builds identity page tables
 * for the low 4 GiB (2 MiB pages, so PCI BARs below 4 GiB are reachable), enters long mode,
 * enables SSE (gcc may use it) and calls main(). HLT ends the run. */

#define PML4   0x10000
#define PDPT   0x11000
#define PD     0x12000          /* four page directories, 0x12000..0x15fff */
#define STACK  0x80000

    .section .text.boot, "ax"
    .code16
    .globl _start
_start:
    cli
    xorw %ax, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movw $0x7000, %sp
    lgdtl gdt_desc
    movl %cr0, %eax
    orl $1, %eax
    movl %eax, %cr0
    ljmpl $0x08, $pm32

    .code32
pm32:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movw %ax, %fs
    movw %ax, %gs
    movl $STACK, %esp

    /* Zero the page-table area. */
    cld
    movl $PML4, %edi
    xorl %eax, %eax
    movl $(0x6000 / 4), %ecx
    rep stosl

    movl $(PDPT | 3), PML4
    movl $(PD | 3), PDPT
    movl $(PD + 0x1000 | 3), PDPT + 8
    movl $(PD + 0x2000 | 3), PDPT + 16
    movl $(PD + 0x3000 | 3), PDPT + 24

    /* 2048 2 MiB pages: present, writable, large. The top GiB (PCI MMIO) is uncached. */
    movl $PD, %edi
    xorl %ebx, %ebx               /* page index */
1:  movl %ebx, %eax
    shll $21, %eax
    orl $0x83, %eax
    cmpl $1536, %ebx
    jb 2f
    orl $0x18, %eax               /* PCD | PWT */
2:  movl %eax, (%edi)
    movl %ebx, %eax
    shrl $11, %eax                /* bits 32.. of the address */
    movl %eax, 4(%edi)
    addl $8, %edi
    incl %ebx
    cmpl $2048, %ebx
    jb 1b

    movl $PML4, %eax
    movl %eax, %cr3
    movl %cr4, %eax
    orl $((1 << 5) | (1 << 9) | (1 << 10)), %eax   /* PAE, OSFXSR, OSXMMEXCPT */
    movl %eax, %cr4
    movl $0xc0000080, %ecx        /* EFER */
    rdmsr
    orl $(1 << 8), %eax           /* LME */
    wrmsr
    movl %cr0, %eax
    andl $~(1 << 2), %eax         /* clear EM */
    orl $((1 << 31) | (1 << 1)), %eax  /* PG, MP */
    movl %eax, %cr0
    ljmpl $0x18, $lm64

    .code64
lm64:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movq $STACK, %rsp
    /* Zero .bss: objcopy leaves it out of the image. */
    leaq __bss_start(%rip), %rdi
    leaq __bss_end(%rip), %rcx
    subq %rdi, %rcx
    xorl %eax, %eax
    rep stosb
    call main
halt:
    hlt
    jmp halt

    .section .note.GNU-stack, "", @progbits

    .section .rodata.boot, "a"
    .p2align 3
gdt:
    .quad 0
    .quad 0x00cf9a000000ffff      /* 0x08: 32-bit code */
    .quad 0x00cf92000000ffff      /* 0x10: data */
    .quad 0x00af9a000000ffff      /* 0x18: 64-bit code */
gdt_end:
gdt_desc:
    .word gdt_end - gdt - 1
    .long gdt
