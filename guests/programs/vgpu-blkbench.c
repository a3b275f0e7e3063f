/* Storage benchmark for the vhost-user suite: sequential 1 MiB reads or random 4 KiB reads with
 * O_DIRECT (the guest page cache would otherwise answer repeats), for a fixed time.
 *
 *   vgpu-blkbench seq|rand PATH SECONDS LABEL
 *
 * Prints "VGPU-BENCH LABEL seq_mib_s X" or "VGPU-BENCH LABEL rand4k_iops X". */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BLKGETSIZE64 _IOR(0x12, 114, size_t)

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

/* xorshift64: reproducible offsets without libc's rand state. */
static uint64_t next_random(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

int main(int argc, char **argv) {
    if (argc != 5 || (strcmp(argv[1], "seq") && strcmp(argv[1], "rand"))) {
        fprintf(stderr, "usage: vgpu-blkbench seq|rand PATH SECONDS LABEL\n");
        return 2;
    }
    int seq = strcmp(argv[1], "seq") == 0;
    double seconds = atof(argv[3]);
    int fd = open(argv[2], O_RDONLY | O_DIRECT);
    if (fd < 0) {
        printf("VGPU-BENCH %s error open %s: %s\n", argv[4], argv[2], strerror(errno));
        return 1;
    }
    uint64_t size = 0;
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
        size = st.st_size;
    else if (ioctl(fd, BLKGETSIZE64, &size) != 0)
        size = 0;
    size_t block = seq ? 1 << 20 : 4096;
    if (size < block) {
        printf("VGPU-BENCH %s error %s is too small\n", argv[4], argv[2]);
        return 1;
    }
    void *buf;
    if (posix_memalign(&buf, 4096, block))
        return 1;
    uint64_t blocks = size / block, done = 0, offset = 0, state = 0x9e3779b97f4a7c15ull;
    double start = now(), end = start + seconds, t = start;
    while (t < end) {
        uint64_t at = seq ? offset : (next_random(&state) % blocks) * block;
        ssize_t n = pread(fd, buf, block, at);
        if (n != (ssize_t)block) {
            printf("VGPU-BENCH %s error read at %llu: %s\n", argv[4], (unsigned long long)at,
                   n < 0 ? strerror(errno) : "short");
            return 1;
        }
        done++;
        offset = (offset + block) % (blocks * block);
        if ((done & 15) == 0 || seq)
            t = now();
    }
    t = now() - start;
    if (seq)
        printf("VGPU-BENCH %s seq_mib_s %.1f\n", argv[4], done * (double)block / (1 << 20) / t);
    else
        printf("VGPU-BENCH %s rand4k_iops %.0f\n", argv[4], done / t);
    return 0;
}
