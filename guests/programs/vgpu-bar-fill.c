/* Writes a PCI function's memory BAR as a framebuffer client does: 32-bit stores, one after
 * another, through the BAR mapped from sysfs (resourceN), PASSES times over BYTES. The host
 * counts the VM exits they cost (an mmap-ed BAR must cost none).
 *
 *   vgpu-bar-fill BDF BAR BYTES [PASSES]      (BDF as in /sys/bus/pci/devices) */
#include "vgpu_test.h"

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: vgpu-bar-fill BDF BAR BYTES [PASSES]\n");
        return 2;
    }
    const char *bdf = argv[1];
    int bar = atoi(argv[2]);
    size_t bytes = strtoull(argv[3], NULL, 0) & ~(size_t)3;
    unsigned passes = argc > 4 ? strtoul(argv[4], NULL, 0) : 1;
    char path[256];
    snprintf(path, sizeof path, "/sys/bus/pci/devices/%s/resource%d", bdf, bar);
    int fd = open(path, O_RDWR | O_SYNC);
    if (fd < 0) {
        report("bar-fill", "FAIL", "open %s: %s", path, strerror(errno));
        return 1;
    }
    off_t size = lseek(fd, 0, SEEK_END);
    if (size <= 0 || (size_t)size < bytes) {
        report("bar-fill", "FAIL", "%s has %lld bytes, %zu asked", path, (long long)size, bytes);
        return 1;
    }
    void *map = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        report("bar-fill", "FAIL", "mmap %s: %s", path, strerror(errno));
        return 1;
    }
    volatile uint32_t *words = map;
    size_t count = bytes / 4;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (unsigned p = 0; p < passes; p++)
        for (size_t i = 0; i < count; i++)
            words[i] = (uint32_t)(i * 0x9e3779b1u + p);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    /* Read one back: the stores reached the device's memory. */
    uint32_t last = words[count - 1];
    uint32_t want = (uint32_t)((count - 1) * 0x9e3779b1u + passes - 1);
    double ns = (t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec);
    unsigned long long writes = (unsigned long long)count * passes;
    report("bar-fill", last == want ? "PASS" : "FAIL", "%s BAR%d writes=%llu ns_per_write=%.1f",
           bdf, bar, writes, writes ? ns / writes : 0.0);
    munmap(map, bytes);
    close(fd);
    return last == want ? 0 : 1;
}
