/* Just enough of the PCI, virtio-pci (virtio 1.2, 4.1) and virtio-gpu (5.7) layouts. */
#pragma once
#include <stdint.h>

#define VIRTIO_VENDOR 0x1af4
#define VIRTIO_GPU_DEVICE 0x1050

#define PCI_CAP_VENDOR 0x09
#define PCI_CAP_MSIX 0x11
#define VIRTIO_PCI_CAP_COMMON 1
#define VIRTIO_PCI_CAP_NOTIFY 2
#define VIRTIO_PCI_CAP_ISR 3
#define VIRTIO_PCI_CAP_DEVICE 4

#define STATUS_ACK 1
#define STATUS_DRIVER 2
#define STATUS_DRIVER_OK 4
#define STATUS_FEATURES_OK 8
#define STATUS_FAILED 0x80
#define VIRTIO_F_VERSION_1_HI 1 /* bit 32: bit 0 of the high feature word */

struct virtio_pci_common_cfg {
    uint32_t device_feature_select;
    uint32_t device_feature;
    uint32_t driver_feature_select;
    uint32_t driver_feature;
    uint16_t config_msix_vector;
    uint16_t num_queues;
    uint8_t device_status;
    uint8_t config_generation;
    uint16_t queue_select;
    uint16_t queue_size;
    uint16_t queue_msix_vector;
    uint16_t queue_enable;
    uint16_t queue_notify_off;
    uint64_t queue_desc;
    uint64_t queue_driver;
    uint64_t queue_device;
};

#define VRING_DESC_F_NEXT 1
#define VRING_DESC_F_WRITE 2
struct vring_desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};
struct vring_avail {
    uint16_t flags;
    uint16_t idx;
    uint16_t ring[];
};
struct vring_used_elem {
    uint32_t id;
    uint32_t len;
};
struct vring_used {
    uint16_t flags;
    uint16_t idx;
    struct vring_used_elem ring[];
};

/* virtio-gpu */
#define VIRTIO_GPU_CMD_GET_DISPLAY_INFO 0x0100
#define VIRTIO_GPU_CMD_RESOURCE_CREATE_2D 0x0101
#define VIRTIO_GPU_CMD_SET_SCANOUT 0x0103
#define VIRTIO_GPU_CMD_RESOURCE_FLUSH 0x0104
#define VIRTIO_GPU_CMD_TRANSFER_TO_HOST_2D 0x0105
#define VIRTIO_GPU_CMD_RESOURCE_ATTACH_BACKING 0x0106
#define VIRTIO_GPU_RESP_OK_NODATA 0x1100
#define VIRTIO_GPU_RESP_OK_DISPLAY_INFO 0x1101
#define VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID 0x1203
#define VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM 2

struct gpu_hdr {
    uint32_t type;
    uint32_t flags;
    uint64_t fence_id;
    uint32_t ctx_id;
    uint8_t ring_idx;
    uint8_t padding[3];
};
struct gpu_rect {
    uint32_t x, y, width, height;
};
struct gpu_display_info {
    struct gpu_hdr hdr;
    struct {
        struct gpu_rect r;
        uint32_t enabled;
        uint32_t flags;
    } pmodes[16];
};
struct gpu_resource_create_2d {
    struct gpu_hdr hdr;
    uint32_t resource_id, format, width, height;
};
struct gpu_attach_backing {
    struct gpu_hdr hdr;
    uint32_t resource_id, nr_entries;
    struct {
        uint64_t addr;
        uint32_t length, padding;
    } entries[1];
};
struct gpu_transfer_to_host_2d {
    struct gpu_hdr hdr;
    struct gpu_rect r;
    uint64_t offset;
    uint32_t resource_id, padding;
};
struct gpu_set_scanout {
    struct gpu_hdr hdr;
    struct gpu_rect r;
    uint32_t scanout_id, resource_id;
};
struct gpu_resource_flush {
    struct gpu_hdr hdr;
    struct gpu_rect r;
    uint32_t resource_id, padding;
};
