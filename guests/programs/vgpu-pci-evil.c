/* A hostile guest against a PCI function, through what Linux lets root do: random 1/2/4-byte
 * writes (and reads) all over its config space (BARs, command, capabilities, MSI-X control,
 * whatever follows) and random writes and reads in every memory BAR it has (resourceN mapped).
 * The header is saved first and written back at the end (BARs, command, ROM), so the kernel's
 * view of where the BARs are stays true; the caller then resets the function and rebinds its
 * driver, which must work again.
 *
 *   vgpu-pci-evil BDF [ROUNDS] [SEED]      (BDF as in /sys/bus/pci/devices, 0000:00:02.0) */
#include "vgpu_test.h"

static uint64_t rng;
static uint64_t next(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: vgpu-pci-evil BDF [ROUNDS] [SEED]\n");
        return 2;
    }
    const char *bdf = argv[1];
    unsigned rounds = argc > 2 ? strtoul(argv[2], NULL, 0) : 2000;
    rng = argc > 3 ? strtoull(argv[3], NULL, 0) : 0x9e3779b97f4a7c15ull;
    char path[256];
    snprintf(path, sizeof path, "/sys/bus/pci/devices/%s/config", bdf);
    int cfg = open(path, O_RDWR);
    if (cfg < 0) {
        report("pci-evil", "FAIL", "open %s: %s", path, strerror(errno));
        return 1;
    }
    uint8_t saved[64];
    if (pread(cfg, saved, sizeof saved, 0) != (ssize_t)sizeof saved) {
        report("pci-evil", "FAIL", "reading the header: %s", strerror(errno));
        return 1;
    }
    /* Every memory BAR the kernel exposes, mapped. */
    uint8_t *bars[6] = {0};
    size_t sizes[6] = {0};
    for (int i = 0; i < 6; i++) {
        snprintf(path, sizeof path, "/sys/bus/pci/devices/%s/resource%d", bdf, i);
        int fd = open(path, O_RDWR | O_SYNC);
        if (fd < 0)
            continue;
        off_t size = lseek(fd, 0, SEEK_END);
        if (size > 0) {
            size_t len = size > (16 << 20) ? (16 << 20) : (size_t)size;
            void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            if (p != MAP_FAILED) {
                bars[i] = p;
                sizes[i] = len;
            }
        }
        close(fd);
    }
    unsigned cfg_writes = 0, bar_writes = 0;
    for (unsigned r = 0; r < rounds; r++) {
        uint64_t x = next();
        unsigned len = (unsigned[]){1, 2, 4}[x % 3];
        uint32_t value = (uint32_t)(x >> 32);
        if (x & 8) {
            /* The header's BARs and command only at the end of a round, so the BAR mappings
             * below stay where they are most of the time; the rest anywhere. */
            off_t at = (off_t)((x >> 8) % 256) & ~(off_t)(len - 1);
            if (at < 0x40 && (x & 0x70) != 0)
                at += 0x40;
            if (pwrite(cfg, &value, len, at) == (ssize_t)len)
                cfg_writes++;
            uint32_t back;
            if (pread(cfg, &back, len, at) < 0)
                break;
        } else {
            int b = (int)((x >> 4) % 6);
            if (!bars[b])
                continue;
            size_t at = ((x >> 12) % sizes[b]) & ~(size_t)3;
            volatile uint32_t *p = (volatile uint32_t *)(bars[b] + at);
            if (x & 0x80)
                (void)*p;
            else {
                *p = value;
                bar_writes++;
            }
        }
    }
    /* Put the header back: BARs first with decoding off, then the command register. */
    uint16_t off = 0;
    pwrite(cfg, &off, 2, 4);
    for (int at = 0x10; at < 0x34; at += 4)
        pwrite(cfg, saved + at, 4, at);
    pwrite(cfg, saved + 0x3c, 1, 0x3c);
    pwrite(cfg, saved + 4, 2, 4);
    report("pci-evil", "PASS", "%s: %u config writes, %u BAR writes", bdf, cfg_writes, bar_writes);
    return 0;
}
