/* Shared helpers for the guest test programs: result lines on the serial console, DRM access, and
 * the virtgpu uAPI (declared here because bookworm's libdrm-dev ships a virtgpu_drm.h from before
 * blob resources and context init; the layouts are the kernel's include/uapi/drm/virtgpu_drm.h).
 *
 * Result lines, parsed by tests/src/lib.rs:  VGPU-TEST <name> PASS|FAIL|SKIP <detail>
 * Values the host may want:                  VGPU-PARAM <name> <value> */
#ifndef VGPU_TEST_H
#define VGPU_TEST_H

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <drm.h>
#include <drm_mode.h>

static int vgpu_failures;

__attribute__((format(printf, 3, 4))) static void report(const char *name, const char *status,
                                                         const char *fmt, ...) {
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    if (strcmp(status, "FAIL") == 0)
        vgpu_failures++;
    printf("VGPU-TEST %s %s %s\n", name, status, detail);
    fflush(stdout);
}

static int open_card_at(const char *path) {
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        report("open-card", "FAIL", "open %s: %s", path, strerror(errno));
        exit(1);
    }
    return fd;
}

__attribute__((unused)) static int open_card(void) {
    return open_card_at("/dev/dri/card0");
}

/* ioctl that restarts on EINTR/EAGAIN, like libdrm's drmIoctl. */
static int xioctl(int fd, unsigned long req, void *arg) {
    int ret;
    do {
        ret = ioctl(fd, req, arg);
    } while (ret == -1 && (errno == EINTR || errno == EAGAIN));
    return ret;
}

__attribute__((unused)) static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* The known pattern: eight vertical colour bars (XRGB8888), the host checks their centres. */
static const uint32_t vgpu_bars[8] = {0xffffff, 0xffff00, 0x00ffff, 0x00ff00,
                                      0xff00ff, 0xff0000, 0x0000ff, 0x000000};

__attribute__((unused)) static void draw_bars(uint32_t *px, uint32_t width, uint32_t height, uint32_t stride_bytes) {
    for (uint32_t y = 0; y < height; y++) {
        uint32_t *row = (uint32_t *)((uint8_t *)px + (size_t)y * stride_bytes);
        for (uint32_t x = 0; x < width; x++)
            row[x] = vgpu_bars[(uint64_t)x * 8 / width];
    }
}

/* ---- virtgpu uAPI ---------------------------------------------------------------------------- */
#define VGT_MAP 0x01
#define VGT_EXECBUFFER 0x02
#define VGT_GETPARAM 0x03
#define VGT_RESOURCE_CREATE 0x04
#define VGT_RESOURCE_INFO 0x05
#define VGT_TRANSFER_FROM_HOST 0x06
#define VGT_TRANSFER_TO_HOST 0x07
#define VGT_WAIT 0x08
#define VGT_GET_CAPS 0x09
#define VGT_RESOURCE_CREATE_BLOB 0x0a
#define VGT_CONTEXT_INIT 0x0b

#define VIRTGPU_PARAM_3D_FEATURES 1
#define VIRTGPU_PARAM_CAPSET_QUERY_FIX 2
#define VIRTGPU_PARAM_RESOURCE_BLOB 3
#define VIRTGPU_PARAM_HOST_VISIBLE 4
#define VIRTGPU_PARAM_CROSS_DEVICE 5
#define VIRTGPU_PARAM_CONTEXT_INIT 6
#define VIRTGPU_PARAM_SUPPORTED_CAPSET_IDS 7

#define VIRTGPU_EXECBUF_FENCE_FD_OUT 0x02
#define VIRTGPU_EXECBUF_RING_IDX 0x04

#define VIRTGPU_BLOB_MEM_GUEST 0x0001
#define VIRTGPU_BLOB_MEM_HOST3D 0x0002
#define VIRTGPU_BLOB_FLAG_USE_MAPPABLE 0x0001

#define VIRTGPU_CONTEXT_PARAM_CAPSET_ID 0x0001
#define VIRTGPU_CONTEXT_PARAM_NUM_RINGS 0x0002

struct vgt_map { uint64_t offset; uint32_t handle; uint32_t pad; };
struct vgt_execbuffer {
    uint32_t flags, size;
    uint64_t command, bo_handles;
    uint32_t num_bo_handles;
    int32_t fence_fd;
    uint32_t ring_idx, pad;
};
struct vgt_getparam { uint64_t param, value; };
struct vgt_resource_create {
    uint32_t target, format, bind, width, height, depth, array_size, last_level, nr_samples,
        flags, bo_handle, res_handle, size, stride;
};
struct vgt_box { uint32_t x, y, z, w, h, d; };
struct vgt_transfer {
    uint32_t bo_handle;
    struct vgt_box box;
    uint32_t level, offset, stride, layer_stride;
};
struct vgt_wait { uint32_t handle, flags; };
struct vgt_get_caps { uint32_t cap_set_id, cap_set_ver; uint64_t addr; uint32_t size, pad; };
struct vgt_resource_create_blob {
    uint32_t blob_mem, blob_flags, bo_handle, res_handle;
    uint64_t size;
    uint32_t pad, cmd_size;
    uint64_t cmd, blob_id;
};
struct vgt_context_set_param { uint64_t param, value; };
struct vgt_context_init { uint32_t num_params, pad; uint64_t ctx_set_params; };

#define VGT_IOCTL(nr, type) DRM_IOWR(DRM_COMMAND_BASE + (nr), type)
#define VGT_IOCTL_MAP VGT_IOCTL(VGT_MAP, struct vgt_map)
#define VGT_IOCTL_EXECBUFFER VGT_IOCTL(VGT_EXECBUFFER, struct vgt_execbuffer)
#define VGT_IOCTL_GETPARAM VGT_IOCTL(VGT_GETPARAM, struct vgt_getparam)
#define VGT_IOCTL_RESOURCE_CREATE VGT_IOCTL(VGT_RESOURCE_CREATE, struct vgt_resource_create)
#define VGT_IOCTL_TRANSFER_FROM_HOST VGT_IOCTL(VGT_TRANSFER_FROM_HOST, struct vgt_transfer)
#define VGT_IOCTL_TRANSFER_TO_HOST VGT_IOCTL(VGT_TRANSFER_TO_HOST, struct vgt_transfer)
#define VGT_IOCTL_WAIT VGT_IOCTL(VGT_WAIT, struct vgt_wait)
#define VGT_IOCTL_GET_CAPS VGT_IOCTL(VGT_GET_CAPS, struct vgt_get_caps)
#define VGT_IOCTL_RESOURCE_CREATE_BLOB \
    VGT_IOCTL(VGT_RESOURCE_CREATE_BLOB, struct vgt_resource_create_blob)
#define VGT_IOCTL_CONTEXT_INIT VGT_IOCTL(VGT_CONTEXT_INIT, struct vgt_context_init)

/* virtio-gpu's own format numbers (RESOURCE_CREATE passes them through in 2D mode). */
#define VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM 2
#define PIPE_TEXTURE_2D 2

__attribute__((unused)) static uint64_t getparam(int fd, uint64_t param, int *ok) {
    uint64_t value = 0;
    struct vgt_getparam gp = {.param = param, .value = (uint64_t)(uintptr_t)&value};
    *ok = xioctl(fd, VGT_IOCTL_GETPARAM, &gp) == 0;
    return value;
}

#endif
