/* A hostile venus guest: each attack gets a fresh DRM file, so a fresh context (CONTEXT_INIT with
 * capset VENUS), and sends a malformed venus stream through DRM_IOCTL_VIRTGPU_EXECBUFFER with an
 * out-fence on ring 0. The device must answer with an error, end only that context, and still
 * signal the fence (a hang here is a FAIL). It also asks for a HOST3D blob of device memory that
 * does not exist and maps it: the map must fail, not hang. The L2 script then runs well-behaved
 * Vulkan programs and the display in the same guest. */
#include <poll.h>
#include <sys/mman.h>

#include "vgpu_test.h"

#define CAPSET_VENUS 4

static int venus_fd(void) {
    int fd = open_card();
    struct vgt_context_set_param cp[2] = {{VIRTGPU_CONTEXT_PARAM_CAPSET_ID, CAPSET_VENUS},
                                          {VIRTGPU_CONTEXT_PARAM_NUM_RINGS, 64}};
    struct vgt_context_init ci = {.num_params = 2, .ctx_set_params = (uintptr_t)cp};
    if (xioctl(fd, VGT_IOCTL_CONTEXT_INIT, &ci)) {
        report("venus-context-init", "FAIL", "CONTEXT_INIT capset 4: %s", strerror(errno));
        exit(1);
    }
    return fd;
}

/* Sends `stream` with an out-fence and waits for the fence; PASS when it signals. */
static void attack(const char *name, const void *stream, uint32_t size) {
    int fd = venus_fd();
    struct vgt_execbuffer eb = {.flags = VIRTGPU_EXECBUF_FENCE_FD_OUT | VIRTGPU_EXECBUF_RING_IDX,
                                .size = size, .command = (uintptr_t)stream, .fence_fd = -1,
                                .ring_idx = 0};
    double t0 = now_ms();
    if (xioctl(fd, VGT_IOCTL_EXECBUFFER, &eb)) {
        /* The kernel refused it before the device saw it: nothing reached the host. */
        report(name, "PASS", "refused by the guest kernel: %s", strerror(errno));
        close(fd);
        return;
    }
    struct pollfd p = {.fd = eb.fence_fd, .events = POLLIN};
    int r = poll(&p, 1, 20000);
    if (r == 1)
        report(name, "PASS", "fence signalled after %.1f ms", now_ms() - t0);
    else
        report(name, "FAIL", "fence not signalled within 20 s (poll %d)", r);
    close(eb.fence_fd);
    close(fd);
}

int main(void) {
    uint32_t garbage[64];
    for (unsigned i = 0; i < 64; i++)
        garbage[i] = 0x9e3779b9u * (i + 1);
    attack("venus-evil-garbage", garbage, sizeof garbage);

    /* A command type past every known one, asking for a reply. */
    uint32_t unknown[4] = {0x7fffffffu, 1, 0, 0};
    attack("venus-evil-unknown-command", unknown, sizeof unknown);

    /* vkSetReplyCommandStreamMESA (178) into a resource that does not exist. */
    uint32_t reply[9] = {178, 0, 1, 0, 0xdeadbeefu, 0, 0, 4096, 0};
    attack("venus-evil-reply-to-nothing", reply, sizeof reply);

    /* vkEnumerateInstanceVersion (137) with its pointer cut off mid-word. */
    uint8_t truncated[11] = {137, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0};
    attack("venus-evil-truncated", truncated, sizeof truncated);

    /* vkCreateRingMESA (188) whose ring lives in a resource that does not exist. */
    uint32_t ring[24] = {188, 0, 0x77, 0, 1, 0, 0, 0, 0, 0, 0xdeadbeefu};
    attack("venus-evil-ring-in-nothing", ring, sizeof ring);

    /* A blob of device memory the context never allocated, then a map of it. */
    int fd = venus_fd();
    struct vgt_resource_create_blob rb = {.blob_mem = VIRTGPU_BLOB_MEM_HOST3D,
                                          .blob_flags = VIRTGPU_BLOB_FLAG_USE_MAPPABLE,
                                          .size = 4096, .blob_id = 0x5eed};
    if (xioctl(fd, VGT_IOCTL_RESOURCE_CREATE_BLOB, &rb)) {
        report("venus-evil-blob-of-nothing", "PASS", "refused: %s", strerror(errno));
    } else {
        struct vgt_map m = {.handle = rb.bo_handle};
        void *p = MAP_FAILED;
        if (xioctl(fd, VGT_IOCTL_MAP, &m) == 0)
            p = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, (off_t)m.offset);
        report("venus-evil-blob-of-nothing", p == MAP_FAILED ? "PASS" : "FAIL",
               "map of a blob the device refused: %s",
               p == MAP_FAILED ? strerror(errno) : "mapped");
    }
    close(fd);
    printf("VGPU-TEST venus-evil-done %s %d failures\n", vgpu_failures ? "FAIL" : "PASS",
           vgpu_failures);
    return vgpu_failures != 0;
}
