/* The virtgpu ioctls, through the guest kernel: GETPARAM, GET_CAPS, RESOURCE_CREATE, TRANSFER_TO_HOST
 * and FROM_HOST, WAIT, CONTEXT_INIT with a capset the device offers, blob resources, fences.
 * Tests the device does not offer (the guest driver says so through GETPARAM) report SKIP. */
#include <poll.h>

#include "vgpu_test.h"

#define W 64
#define H 64

static const char *param_names[] = {NULL, "3d_features", "capset_query_fix", "resource_blob",
                                    "host_visible", "cross_device", "context_init",
                                    "supported_capset_ids"};

static void *map_bo(int fd, uint32_t handle, size_t size) {
    struct vgt_map m = {.handle = handle};
    if (xioctl(fd, VGT_IOCTL_MAP, &m))
        return NULL;
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, m.offset);
    return p == MAP_FAILED ? NULL : p;
}

static int wait_bo(int fd, uint32_t handle) {
    struct vgt_wait w = {.handle = handle};
    return xioctl(fd, VGT_IOCTL_WAIT, &w) ? -errno : 0;
}

int main(void) {
    int fd = open_card();
    uint64_t params[8] = {0};
    int ok;
    for (int p = 1; p < 8; p++) {
        params[p] = getparam(fd, p, &ok);
        printf("VGPU-PARAM %s %s%llu\n", param_names[p], ok ? "" : "unknown:",
               (unsigned long long)params[p]);
    }
    getparam(fd, VIRTGPU_PARAM_3D_FEATURES, &ok);
    report("getparam", ok ? "PASS" : "FAIL", "3d=%llu blob=%llu host_visible=%llu "
           "context_init=%llu capsets=%#llx", (unsigned long long)params[1],
           (unsigned long long)params[3], (unsigned long long)params[4],
           (unsigned long long)params[6], (unsigned long long)params[7]);
    int has_3d = params[1] != 0;
    uint64_t capset_mask = params[7];

    /* GET_CAPS: the first capset the device offers. */
    uint32_t capset_id = 0;
    for (int bit = 1; bit < 64; bit++)
        if (capset_mask & (1ull << bit)) {
            capset_id = bit;
            break;
        }
    if (capset_id) {
        static uint8_t caps[65536];
        struct vgt_get_caps gc = {.cap_set_id = capset_id, .cap_set_ver = 0,
                                  .addr = (uintptr_t)caps, .size = sizeof caps};
        int r = xioctl(fd, VGT_IOCTL_GET_CAPS, &gc);
        report("get-caps", r ? "FAIL" : "PASS", "capset %u: %s", capset_id,
               r ? strerror(errno) : "ok");
    } else {
        report("get-caps", "SKIP", "device offers no capsets");
    }

    /* RESOURCE_CREATE: a 64x64 BGRX image (2D resource without virgl, 3D resource with it). */
    struct vgt_resource_create rc = {.target = PIPE_TEXTURE_2D,
                                     .format = VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM,
                                     .bind = 2 /* render target */, .width = W, .height = H,
                                     .depth = 1, .array_size = 1, .size = W * H * 4,
                                     .stride = W * 4};
    if (xioctl(fd, VGT_IOCTL_RESOURCE_CREATE, &rc)) {
        report("resource-create", "FAIL", "%s", strerror(errno));
        return 1;
    }
    report("resource-create", "PASS", "bo %u res %u", rc.bo_handle, rc.res_handle);
    uint32_t *px = map_bo(fd, rc.bo_handle, W * H * 4);
    if (!px) {
        report("resource-map", "FAIL", "%s", strerror(errno));
        return 1;
    }
    for (uint32_t i = 0; i < W * H; i++)
        px[i] = 0x00010203u * (i & 0x3f) ^ i;

    struct vgt_transfer t = {.bo_handle = rc.bo_handle, .box = {0, 0, 0, W, H, 1},
                             .stride = W * 4};
    int r = xioctl(fd, VGT_IOCTL_TRANSFER_TO_HOST, &t);
    report("transfer-to-host", r ? "FAIL" : "PASS", "%s", r ? strerror(errno) : "64x64");
    r = wait_bo(fd, rc.bo_handle);
    report("wait", r ? "FAIL" : "PASS", "%s", r ? strerror(-r) : "transfer fence signalled");

    memset(px, 0, W * H * 4);
    r = xioctl(fd, VGT_IOCTL_TRANSFER_FROM_HOST, &t);
    if (r && errno == ENOSYS) {
        report("transfer-from-host", "SKIP", "guest driver has no 3D (virgl) mode");
    } else if (r) {
        report("transfer-from-host", "FAIL", "%s", strerror(errno));
    } else {
        wait_bo(fd, rc.bo_handle);
        uint32_t bad = 0;
        for (uint32_t i = 0; i < W * H; i++)
            bad += px[i] != (0x00010203u * (i & 0x3f) ^ i);
        report("transfer-from-host", bad ? "FAIL" : "PASS", "%u of %u pixels differ", bad, W * H);
    }

    /* CONTEXT_INIT with a capset the device offers. */
    int have_ctx = 0;
    if (params[6] && capset_id) {
        struct vgt_context_set_param cp[2] = {{VIRTGPU_CONTEXT_PARAM_CAPSET_ID, capset_id},
                                              {VIRTGPU_CONTEXT_PARAM_NUM_RINGS, 1}};
        struct vgt_context_init ci = {.num_params = 2, .ctx_set_params = (uintptr_t)cp};
        r = xioctl(fd, VGT_IOCTL_CONTEXT_INIT, &ci);
        have_ctx = r == 0;
        report("context-init", r ? "FAIL" : "PASS", "capset %u: %s", capset_id,
               r ? strerror(errno) : "ok");
    } else {
        report("context-init", "SKIP", "device offers no context init or no capset");
    }

    /* Blob resources: guest memory always (when blobs are offered), host3d with host-visible. */
    if (params[3]) {
        struct vgt_resource_create_blob b = {.blob_mem = VIRTGPU_BLOB_MEM_GUEST,
                                             .blob_flags = VIRTGPU_BLOB_FLAG_USE_MAPPABLE,
                                             .size = 65536};
        r = xioctl(fd, VGT_IOCTL_RESOURCE_CREATE_BLOB, &b);
        uint8_t *p = r ? NULL : map_bo(fd, b.bo_handle, 65536);
        if (p)
            memset(p, 0x5a, 65536);
        report("blob-guest", p ? "PASS" : "FAIL", "%s", r ? strerror(errno) : p ? "mapped" : "map failed");
        if (params[4] && have_ctx) {
            struct vgt_resource_create_blob h = {.blob_mem = VIRTGPU_BLOB_MEM_HOST3D,
                                                 .blob_flags = VIRTGPU_BLOB_FLAG_USE_MAPPABLE,
                                                 .size = 65536, .blob_id = 1};
            r = xioctl(fd, VGT_IOCTL_RESOURCE_CREATE_BLOB, &h);
            uint8_t *q = r ? NULL : map_bo(fd, h.bo_handle, 65536);
            if (q)
                q[0] = 1;
            report("blob-host3d", q ? "PASS" : "FAIL", "%s", r ? strerror(errno) : q ? "mapped" : "map failed");
        } else {
            report("blob-host3d", "SKIP", "no host-visible region or no context");
        }
    } else {
        report("blob-guest", "SKIP", "device offers no blob resources");
        report("blob-host3d", "SKIP", "device offers no blob resources");
    }

    /* Fences: an (empty) command buffer with an out-fence, which must signal. */
    if (has_3d) {
        struct vgt_execbuffer eb = {.flags = VIRTGPU_EXECBUF_FENCE_FD_OUT, .fence_fd = -1};
        r = xioctl(fd, VGT_IOCTL_EXECBUFFER, &eb);
        if (r) {
            report("fence", "FAIL", "EXECBUFFER: %s", strerror(errno));
        } else {
            struct pollfd pfd = {.fd = eb.fence_fd, .events = POLLIN};
            int n = poll(&pfd, 1, 5000);
            report("fence", n == 1 ? "PASS" : "FAIL", "fence fd %d %s", eb.fence_fd,
                   n == 1 ? "signalled" : "did not signal in 5 s");
        }
    } else {
        report("fence", "SKIP", "EXECBUFFER needs the guest driver's 3D mode");
    }
    printf("VGPU-SUMMARY vgpu-ioctl failures=%d\n", vgpu_failures);
    return vgpu_failures ? 1 : 0;
}
