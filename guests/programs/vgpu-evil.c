/* A misbehaving guest, as far as the kernel driver lets one through to the device: transfers larger
 * than the resource, transfers past the end of the backing, an unknown pixel format, a resource of
 * 65535x65535, and (with 3D) a garbage command stream. The device must answer with error responses
 * (the guest driver logs "response 0x12xx (command 0x1xx)") and keep working; the host test then
 * runs vgpu-kms and checks the display.
 *
 * Resource ids and command types are chosen by the kernel driver, so bad ids and unknown command
 * types need a raw virtio driver; the device's unit tests cover those. */
#include "vgpu_test.h"

static int create(int fd, uint32_t format, uint32_t w, uint32_t h, struct vgt_resource_create *rc) {
    *rc = (struct vgt_resource_create){.target = PIPE_TEXTURE_2D, .format = format, .bind = 2,
                                       .width = w, .height = h, .depth = 1, .array_size = 1,
                                       .size = 4096 * 4, .stride = w * 4};
    return xioctl(fd, VGT_IOCTL_RESOURCE_CREATE, rc) ? -errno : 0;
}

static void transfer(int fd, const char *name, uint32_t bo, struct vgt_box box, uint32_t offset) {
    struct vgt_transfer t = {.bo_handle = bo, .box = box, .offset = offset, .stride = 64 * 4};
    int r = xioctl(fd, VGT_IOCTL_TRANSFER_TO_HOST, &t);
    /* The ioctl queues the command; the device's answer shows up in the guest driver's log. */
    report(name, "PASS", "ioctl %s", r ? strerror(errno) : "queued");
    struct vgt_wait w = {.handle = bo};
    xioctl(fd, VGT_IOCTL_WAIT, &w);
}

int main(void) {
    int fd = open_card();
    int ok;
    int has_3d = getparam(fd, VIRTGPU_PARAM_3D_FEATURES, &ok) != 0;
    struct vgt_resource_create rc;
    int r = create(fd, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 64, 64, &rc);
    if (r) {
        report("evil-setup", "FAIL", "create 64x64: %s", strerror(-r));
        return 1;
    }
    transfer(fd, "evil-oversized-transfer", rc.bo_handle, (struct vgt_box){0, 0, 0, 4096, 4096, 1}, 0);
    transfer(fd, "evil-offset-past-backing", rc.bo_handle, (struct vgt_box){0, 0, 0, 64, 64, 1},
             0xfff00000u);
    transfer(fd, "evil-box-overflow", rc.bo_handle,
             (struct vgt_box){0xffffffc0u, 0xffffffc0u, 0, 0x80, 0x80, 1}, 0);

    struct vgt_resource_create bad;
    r = create(fd, 0xdead, 64, 64, &bad);
    report("evil-unknown-format", "PASS", "ioctl %s", r ? strerror(-r) : "queued");
    r = create(fd, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 65535, 65535, &bad);
    report("evil-huge-resource", "PASS", "ioctl %s", r ? strerror(-r) : "queued");
    if (!r) /* Using a resource the device refused must fail cleanly too. */
        transfer(fd, "evil-transfer-refused-resource", bad.bo_handle,
                 (struct vgt_box){0, 0, 0, 64, 64, 1}, 0);

    if (has_3d) {
        uint8_t garbage[256];
        for (unsigned i = 0; i < sizeof garbage; i++)
            garbage[i] = (uint8_t)(i * 37 + 11);
        struct vgt_execbuffer eb = {.size = sizeof garbage, .command = (uintptr_t)garbage,
                                    .fence_fd = -1};
        r = xioctl(fd, VGT_IOCTL_EXECBUFFER, &eb);
        report("evil-garbage-commands", "PASS", "ioctl %s", r ? strerror(errno) : "queued");
    } else {
        report("evil-garbage-commands", "SKIP", "EXECBUFFER needs the guest driver's 3D mode");
    }
    usleep(200 * 1000);
    printf("VGPU-SUMMARY vgpu-evil failures=%d\n", vgpu_failures);
    return 0;
}
