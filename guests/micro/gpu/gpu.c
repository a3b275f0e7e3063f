/* The virtio-gpu micro-guest: the whole guest-CPU -> device loop without a kernel.
 *
 * Finds the virtio-gpu function on PCI bus 0, sizes and moves its BAR, negotiates
 * VIRTIO_F_VERSION_1, sets up the control queue, then draws a known picture: four quadrants
 * (red, green, blue, white) transferred whole, then a yellow square in the middle transferred
 * and flushed as a sub-rectangle. The host test reads the scanout back and checks the pixels.
 * Progress and the verdict ("gpu-guest: PASS" or "gpu-guest: FAIL ...") go to port 0xf1. */
#include <stddef.h>
#include <stdint.h>

#include "virtio.h"

#define QSZ 16
#define DESC_ADDR 0x100000UL
#define AVAIL_ADDR 0x101000UL
#define USED_ADDR 0x102000UL
#define REQ_ADDR 0x103000UL
#define RESP_ADDR 0x104000UL
#define FB_ADDR 0x400000UL
#define MAX_W 1920
#define MAX_H 1200
#define SQUARE 32

static inline void outb(uint16_t port, uint8_t v) { __asm__ volatile("outb %0, %1" ::"a"(v), "Nd"(port)); }
static inline void outl(uint16_t port, uint32_t v) { __asm__ volatile("outl %0, %1" ::"a"(v), "Nd"(port)); }
static inline uint32_t inl(uint16_t port) {
    uint32_t v;
    __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}
static inline void mb(void) { __asm__ volatile("mfence" ::: "memory"); }

static void puts_(const char *s) {
    while (*s) outb(0xf1, (uint8_t)*s++);
}
static void puthex(uint64_t v) {
    char buf[19] = "0x";
    int n = 2, started = 0;
    for (int shift = 60; shift >= 0; shift -= 4) {
        unsigned d = (v >> shift) & 0xf;
        if (d || started || shift == 0) {
            buf[n++] = "0123456789abcdef"[d];
            started = 1;
        }
    }
    buf[n] = 0;
    puts_(buf);
}
static void putdec(uint32_t v) {
    char buf[11];
    int n = 10;
    buf[n] = 0;
    do {
        buf[--n] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    puts_(&buf[n]);
}

static int fail(const char *why, uint64_t value) {
    puts_("gpu-guest: FAIL ");
    puts_(why);
    puts_(" ");
    puthex(value);
    puts_("\n");
    return 1;
}

void *memset(void *dst, int c, size_t n) {
    uint8_t *d = dst;
    while (n--) *d++ = (uint8_t)c;
    return dst;
}
void *memcpy(void *dst, const void *src, size_t n) {
    uint8_t *d = dst;
    const uint8_t *s = src;
    while (n--) *d++ = *s++;
    return dst;
}

/* PCI configuration mechanism #1. */
static uint32_t pci_read(unsigned dev, unsigned off) {
    outl(0xcf8, 0x80000000u | dev << 11 | (off & 0xfc));
    return inl(0xcfc);
}
static void pci_write(unsigned dev, unsigned off, uint32_t v) {
    outl(0xcf8, 0x80000000u | dev << 11 | (off & 0xfc));
    outl(0xcfc, v);
}
static uint8_t pci_read8(unsigned dev, unsigned off) { return (uint8_t)(pci_read(dev, off) >> (8 * (off & 3))); }

static uint64_t bar_address(unsigned dev, unsigned bar) {
    uint32_t lo = pci_read(dev, 0x10 + 4 * bar);
    uint64_t addr = lo & ~0xfu;
    if ((lo & 6) == 4) addr |= (uint64_t)pci_read(dev, 0x14 + 4 * bar) << 32;
    return addr;
}

static volatile struct virtio_pci_common_cfg *common;
static volatile uint8_t *isr, *device_cfg, *notify_base;
static uint32_t notify_mult;
static uint16_t notify_off;
static volatile struct vring_desc *desc = (void *)DESC_ADDR;
static volatile struct vring_avail *avail = (void *)AVAIL_ADDR;
static volatile struct vring_used *used = (void *)USED_ADDR;
static uint16_t used_seen;

/* Sends one request (device-readable) and waits for its response (device-writable). */
static int submit(const void *req, uint32_t req_len, uint32_t resp_len, uint32_t want_type) {
    puts_("  cmd ");
    puthex(((const struct gpu_hdr *)req)->type);
    puts_("\n");
    memcpy((void *)REQ_ADDR, req, req_len);
    memset((void *)RESP_ADDR, 0xee, resp_len);
    desc[0].addr = REQ_ADDR;
    desc[0].len = req_len;
    desc[0].flags = VRING_DESC_F_NEXT;
    desc[0].next = 1;
    desc[1].addr = RESP_ADDR;
    desc[1].len = resp_len;
    desc[1].flags = VRING_DESC_F_WRITE;
    desc[1].next = 0;
    avail->ring[avail->idx % QSZ] = 0;
    mb();
    avail->idx = avail->idx + 1;
    mb();
    *(volatile uint16_t *)(notify_base + (uint32_t)notify_off * notify_mult) = 0;
    for (uint64_t spin = 0; used->idx == used_seen; spin++) {
        if (spin > 2000000000ull) return fail("timeout waiting for used ring, cmd", ((const struct gpu_hdr *)req)->type);
        __asm__ volatile("pause");
    }
    used_seen++;
    mb();
    const struct gpu_hdr *resp = (const void *)RESP_ADDR;
    if (used->ring[(used_seen - 1) % QSZ].id != 0) return fail("used id", used->ring[(used_seen - 1) % QSZ].id);
    if (resp->type != want_type) {
        return fail("unexpected response", resp->type);
    }
    /* No MSI-X vector is set, so the device reports through the ISR: bit 0 = used buffer. */
    if ((*isr & 1) == 0) return fail("ISR did not show the used-buffer notification", 0);
    return 0;
}

static int find_gpu(unsigned *out) {
    for (unsigned dev = 0; dev < 32; dev++) {
        uint32_t id = pci_read(dev, 0);
        if (id == 0xffffffff) continue;
        puts_("pci 00:");
        puthex(dev);
        puts_(".0 id ");
        puthex(id);
        puts_("\n");
        if ((id & 0xffff) == VIRTIO_VENDOR && (id >> 16) == VIRTIO_GPU_DEVICE) *out = dev;
    }
    return *out == 0xff ? fail("no virtio-gpu on bus 0", 0) : 0;
}

/* Sizes BAR `bar` the way an OS does and moves it up by `delta`; returns its size. */
static uint64_t size_and_move_bar(unsigned dev, unsigned bar, uint64_t delta) {
    uint32_t cmd = pci_read(dev, 4);
    pci_write(dev, 4, cmd & ~2u);
    uint32_t lo = pci_read(dev, 0x10 + 4 * bar);
    pci_write(dev, 0x10 + 4 * bar, 0xffffffff);
    uint32_t mask = pci_read(dev, 0x10 + 4 * bar) & ~0xfu;
    uint64_t size = (uint64_t)(~mask) + 1;
    size &= 0xffffffff;
    uint64_t addr = bar_address(dev, bar);
    (void)addr;
    uint64_t now = (uint64_t)(lo & ~0xfu) + delta;
    pci_write(dev, 0x10 + 4 * bar, (uint32_t)now | (lo & 0xf));
    pci_write(dev, 4, cmd | 2u | 4u); /* memory space, bus master */
    return size;
}

static int setup_transport(unsigned dev) {
    uint64_t bar0_before = bar_address(dev, 0);
    uint64_t size = size_and_move_bar(dev, 0, 0x01000000);
    puts_("BAR0 size ");
    puthex(size);
    puts_(" moved ");
    puthex(bar0_before);
    puts_(" -> ");
    puthex(bar_address(dev, 0));
    puts_("\n");
    if (bar_address(dev, 0) != bar0_before + 0x01000000) return fail("BAR did not move", bar_address(dev, 0));

    for (unsigned cap = pci_read8(dev, 0x34); cap; cap = pci_read8(dev, cap + 1)) {
        if (pci_read8(dev, cap) != PCI_CAP_VENDOR) continue;
        unsigned type = pci_read8(dev, cap + 3), bar = pci_read8(dev, cap + 4);
        volatile uint8_t *at = (volatile uint8_t *)(bar_address(dev, bar) + pci_read(dev, cap + 8));
        switch (type) {
        case VIRTIO_PCI_CAP_COMMON: common = (void *)at; break;
        case VIRTIO_PCI_CAP_ISR: isr = at; break;
        case VIRTIO_PCI_CAP_DEVICE: device_cfg = at; break;
        case VIRTIO_PCI_CAP_NOTIFY:
            notify_base = at;
            notify_mult = pci_read(dev, cap + 16);
            break;
        }
    }
    if (!common || !isr || !device_cfg || !notify_base) return fail("missing virtio-pci capability", 0);

    common->device_status = 0;
    if (common->device_status != 0) return fail("reset did not clear status", common->device_status);
    common->device_status = STATUS_ACK;
    common->device_status = STATUS_ACK | STATUS_DRIVER;
    common->device_feature_select = 0;
    uint32_t lo = common->device_feature;
    common->device_feature_select = 1;
    uint32_t hi = common->device_feature;
    puts_("device features ");
    puthex((uint64_t)hi << 32 | lo);
    puts_("\n");
    if (!(hi & VIRTIO_F_VERSION_1_HI)) return fail("no VIRTIO_F_VERSION_1", hi);
    common->driver_feature_select = 0;
    common->driver_feature = 0;
    common->driver_feature_select = 1;
    common->driver_feature = VIRTIO_F_VERSION_1_HI;
    common->device_status = STATUS_ACK | STATUS_DRIVER | STATUS_FEATURES_OK;
    if (!(common->device_status & STATUS_FEATURES_OK)) return fail("FEATURES_OK refused", common->device_status);
    if (common->num_queues < 2) return fail("num_queues", common->num_queues);

    common->queue_select = 0;
    uint16_t max = common->queue_size;
    if (max < QSZ) return fail("control queue too small", max);
    common->queue_size = QSZ;
    common->queue_desc = DESC_ADDR;
    common->queue_driver = AVAIL_ADDR;
    common->queue_device = USED_ADDR;
    notify_off = common->queue_notify_off;
    common->queue_enable = 1;
    if (common->queue_enable != 1) return fail("queue_enable", common->queue_enable);
    common->device_status = STATUS_ACK | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK;
    uint32_t scanouts = *(volatile uint32_t *)(device_cfg + 8);
    puts_("driver ok, scanouts ");
    putdec(scanouts);
    puts_("\n");
    return scanouts == 0 ? fail("no scanouts", 0) : 0;
}

static uint32_t width, height;

static void fill(uint32_t x0, uint32_t y0, uint32_t w, uint32_t h, uint32_t xrgb) {
    volatile uint32_t *fb = (volatile uint32_t *)FB_ADDR;
    for (uint32_t y = y0; y < y0 + h; y++)
        for (uint32_t x = x0; x < x0 + w; x++) fb[y * width + x] = xrgb;
}

static int transfer_and_flush(uint32_t x, uint32_t y, uint32_t w, uint32_t h) {
    struct gpu_transfer_to_host_2d t = {{VIRTIO_GPU_CMD_TRANSFER_TO_HOST_2D}, {x, y, w, h}, (uint64_t)y * width * 4 + x * 4, 1, 0};
    if (submit(&t, sizeof t, sizeof(struct gpu_hdr), VIRTIO_GPU_RESP_OK_NODATA)) return 1;
    struct gpu_resource_flush f = {{VIRTIO_GPU_CMD_RESOURCE_FLUSH}, {x, y, w, h}, 1, 0};
    return submit(&f, sizeof f, sizeof(struct gpu_hdr), VIRTIO_GPU_RESP_OK_NODATA);
}

static int draw(void) {
    struct gpu_hdr info_req = {VIRTIO_GPU_CMD_GET_DISPLAY_INFO};
    if (submit(&info_req, sizeof info_req, sizeof(struct gpu_display_info), VIRTIO_GPU_RESP_OK_DISPLAY_INFO)) return 1;
    const struct gpu_display_info *info = (const void *)RESP_ADDR;
    if (!info->pmodes[0].enabled) return fail("scanout 0 not enabled", 0);
    width = info->pmodes[0].r.width;
    height = info->pmodes[0].r.height;
    puts_("display ");
    putdec(width);
    puts_("x");
    putdec(height);
    puts_("\n");
    if (width < 2 * SQUARE || height < 2 * SQUARE || width > MAX_W || height > MAX_H) return fail("display size", width);

    struct gpu_resource_create_2d create = {{VIRTIO_GPU_CMD_RESOURCE_CREATE_2D}, 1, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, width, height};
    if (submit(&create, sizeof create, sizeof(struct gpu_hdr), VIRTIO_GPU_RESP_OK_NODATA)) return 1;
    struct gpu_attach_backing attach = {{VIRTIO_GPU_CMD_RESOURCE_ATTACH_BACKING}, 1, 1, {{FB_ADDR, width * height * 4, 0}}};
    if (submit(&attach, sizeof attach, sizeof(struct gpu_hdr), VIRTIO_GPU_RESP_OK_NODATA)) return 1;

    /* The device must refuse a scanout of a resource that does not exist. */
    struct gpu_set_scanout bad = {{VIRTIO_GPU_CMD_SET_SCANOUT}, {0, 0, width, height}, 0, 99};
    if (submit(&bad, sizeof bad, sizeof(struct gpu_hdr), VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID)) return 1;

    uint32_t hw = width / 2, hh = height / 2;
    fill(0, 0, hw, hh, 0xff0000);
    fill(hw, 0, width - hw, hh, 0x00ff00);
    fill(0, hh, hw, height - hh, 0x0000ff);
    fill(hw, hh, width - hw, height - hh, 0xffffff);
    if (transfer_and_flush(0, 0, width, height)) return 1;
    struct gpu_set_scanout scanout = {{VIRTIO_GPU_CMD_SET_SCANOUT}, {0, 0, width, height}, 0, 1};
    if (submit(&scanout, sizeof scanout, sizeof(struct gpu_hdr), VIRTIO_GPU_RESP_OK_NODATA)) return 1;
    if (transfer_and_flush(0, 0, width, height)) return 1;

    /* A sub-rectangle: only these pixels travel. */
    uint32_t sx = hw - SQUARE / 2, sy = hh - SQUARE / 2;
    fill(sx, sy, SQUARE, SQUARE, 0xffff00);
    return transfer_and_flush(sx, sy, SQUARE, SQUARE);
}

int main(void) {
    puts_("gpu-guest: long mode\n");
    unsigned dev = 0xff;
    if (find_gpu(&dev) || setup_transport(dev) || draw()) return 1;
    puts_("gpu-guest: PASS\n");
    return 0;
}
