/* KMS with dumb buffers: modeset the first connected connector, draw the known colour-bar pattern,
 * present it with DIRTYFB, optionally repeat full-screen updates (the benchmark workload).
 *
 *   vgpu-kms [--card PATH] [--mode WxH] [--invert] [--frames N [--full]] [--flips N] [--hold]
 *
 * --card PATH: the DRM device (default /dev/dri/card0), for guests with several displays.
 * --invert:   the colour bars with every colour inverted, so two displays show different
 *             pictures.
 *
 * --frames N: N full-screen updates (a small counter block in the top-left corner changes, the
 *             whole screen is marked dirty each time); prints the rate.
 * --full:     every pixel changes in every update (a moving ramp), so no device can skip
 *             unchanged pixels.
 * --flips N:  N page flips between two framebuffers holding the same picture, each waited for
 *             (its completion event); prints the rate. For displays that scan out of the buffer
 *             itself (bochs), where a flip is what an update costs the device.
 * --hold:     keep the framebuffer on screen after reporting (a child process holds the DRM file
 *             open and sleeps), so the host can take screenshots while the guest goes on. */
#include "vgpu_test.h"

struct output {
    uint32_t conn_id, crtc_id, fb_id, handle, pitch;
    struct drm_mode_modeinfo mode;
    uint64_t size;
    uint32_t *map;
};

static int pick_output(int fd, struct output *out, unsigned want_w, unsigned want_h) {
    struct drm_mode_card_res res = {0};
    if (xioctl(fd, DRM_IOCTL_MODE_GETRESOURCES, &res))
        return -errno;
    uint32_t conns[16] = {0}, crtcs[16] = {0}, encs[16] = {0};
    if (res.count_connectors > 16 || res.count_crtcs > 16 || res.count_encoders > 16)
        return -E2BIG;
    res.connector_id_ptr = (uintptr_t)conns;
    res.crtc_id_ptr = (uintptr_t)crtcs;
    res.encoder_id_ptr = (uintptr_t)encs;
    res.count_fbs = 0;
    if (xioctl(fd, DRM_IOCTL_MODE_GETRESOURCES, &res))
        return -errno;
    for (uint32_t i = 0; i < res.count_connectors; i++) {
        struct drm_mode_get_connector c = {.connector_id = conns[i]};
        if (xioctl(fd, DRM_IOCTL_MODE_GETCONNECTOR, &c))
            continue;
        if (c.connection != 1 || c.count_modes == 0)
            continue;
        struct drm_mode_modeinfo *modes = calloc(c.count_modes, sizeof *modes);
        uint32_t n_modes = c.count_modes;
        c.modes_ptr = (uintptr_t)modes;
        c.count_props = 0;
        c.count_encoders = 0;
        if (xioctl(fd, DRM_IOCTL_MODE_GETCONNECTOR, &c) || c.count_modes > n_modes) {
            free(modes);
            continue;
        }
        int chosen = 0;
        for (uint32_t m = 0; m < c.count_modes; m++) {
            if (want_w && modes[m].hdisplay == want_w && modes[m].vdisplay == want_h) {
                chosen = m;
                break;
            }
            if (!want_w && (modes[m].type & DRM_MODE_TYPE_PREFERRED)) {
                chosen = m;
                break;
            }
        }
        if (want_w && (modes[chosen].hdisplay != want_w || modes[chosen].vdisplay != want_h)) {
            fprintf(stderr, "mode %ux%u not offered, using %ux%u\n", want_w, want_h,
                    modes[chosen].hdisplay, modes[chosen].vdisplay);
        }
        out->mode = modes[chosen];
        out->conn_id = conns[i];
        out->crtc_id = crtcs[i < res.count_crtcs ? i : 0];
        printf("VGPU-PARAM connector %u modes %u\n", conns[i], c.count_modes);
        free(modes);
        return 0;
    }
    return -ENODEV;
}

static int make_fb(int fd, struct output *out) {
    struct drm_mode_create_dumb cd = {
        .width = out->mode.hdisplay, .height = out->mode.vdisplay, .bpp = 32};
    if (xioctl(fd, DRM_IOCTL_MODE_CREATE_DUMB, &cd))
        return -errno;
    out->handle = cd.handle;
    out->pitch = cd.pitch;
    out->size = cd.size;
    struct drm_mode_fb_cmd2 fb = {.width = cd.width, .height = cd.height,
                                  .pixel_format = 0x34325258 /* XR24 */};
    fb.handles[0] = cd.handle;
    fb.pitches[0] = cd.pitch;
    if (xioctl(fd, DRM_IOCTL_MODE_ADDFB2, &fb))
        return -errno;
    out->fb_id = fb.fb_id;
    struct drm_mode_map_dumb md = {.handle = cd.handle};
    if (xioctl(fd, DRM_IOCTL_MODE_MAP_DUMB, &md))
        return -errno;
    out->map = mmap(NULL, cd.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, md.offset);
    if (out->map == MAP_FAILED)
        return -errno;
    return 0;
}

static int dirty_all(int fd, struct output *out) {
    struct drm_clip_rect clip = {0, 0, out->mode.hdisplay, out->mode.vdisplay};
    struct drm_mode_fb_dirty_cmd d = {.fb_id = out->fb_id, .num_clips = 1,
                                      .clips_ptr = (uintptr_t)&clip};
    return xioctl(fd, DRM_IOCTL_MODE_DIRTYFB, &d) ? -errno : 0;
}

static void paint(struct output *out, int invert) {
    draw_bars(out->map, out->mode.hdisplay, out->mode.vdisplay, out->pitch);
    if (invert)
        for (uint32_t y = 0; y < out->mode.vdisplay; y++)
            for (uint32_t x = 0; x < out->mode.hdisplay; x++)
                out->map[y * (out->pitch / 4) + x] ^= 0x00ffffff;
}

/* `count` page flips, alternating with a second framebuffer of the same picture, each waited
 * for; an even count ends on the first. */
static int flip_between(int fd, struct output *out, unsigned count, int invert) {
    struct output back = *out;
    int err = make_fb(fd, &back);
    if (err)
        return err;
    paint(&back, invert);
    double t0 = now_ms();
    for (unsigned i = 0; i < count; i++) {
        struct drm_mode_crtc_page_flip flip = {.crtc_id = out->crtc_id,
                                               .fb_id = i % 2 ? out->fb_id : back.fb_id,
                                               .flags = DRM_MODE_PAGE_FLIP_EVENT};
        if (xioctl(fd, DRM_IOCTL_MODE_PAGE_FLIP, &flip))
            return -errno;
        char event[64];
        if (read(fd, event, sizeof event) <= 0)
            return -EIO;
    }
    double ms = now_ms() - t0;
    report("kms-flips", "PASS", "flips=%u ms=%.1f fps=%.1f size=%ux%u", count, ms,
           count * 1000.0 / ms, out->mode.hdisplay, out->mode.vdisplay);
    return 0;
}

int main(int argc, char **argv) {
    unsigned want_w = 0, want_h = 0, frames = 0, flips = 0;
    int hold = 0, full = 0, invert = 0;
    const char *card = "/dev/dri/card0";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--card") && i + 1 < argc)
            card = argv[++i];
        else if (!strcmp(argv[i], "--invert"))
            invert = 1;
        else if (!strcmp(argv[i], "--mode") && i + 1 < argc)
            sscanf(argv[++i], "%ux%u", &want_w, &want_h);
        else if (!strcmp(argv[i], "--frames") && i + 1 < argc)
            frames = strtoul(argv[++i], NULL, 0);
        else if (!strcmp(argv[i], "--flips") && i + 1 < argc)
            flips = strtoul(argv[++i], NULL, 0);
        else if (!strcmp(argv[i], "--hold"))
            hold = 1;
        else if (!strcmp(argv[i], "--full"))
            full = 1;
    }
    int fd = open_card_at(card);
    struct output out = {0};
    int err = pick_output(fd, &out, want_w, want_h);
    if (err) {
        report("kms-modeset", "FAIL", "no connected connector: %s", strerror(-err));
        return 1;
    }
    if ((err = make_fb(fd, &out))) {
        report("kms-modeset", "FAIL", "dumb framebuffer: %s", strerror(-err));
        return 1;
    }
    paint(&out, invert);
    struct drm_mode_crtc crtc = {.crtc_id = out.crtc_id, .fb_id = out.fb_id, .mode_valid = 1,
                                 .mode = out.mode, .count_connectors = 1,
                                 .set_connectors_ptr = (uintptr_t)&out.conn_id};
    if (xioctl(fd, DRM_IOCTL_MODE_SETCRTC, &crtc)) {
        report("kms-modeset", "FAIL", "SETCRTC: %s", strerror(errno));
        return 1;
    }
    report("kms-modeset", "PASS", "%ux%u crtc %u connector %u", out.mode.hdisplay,
           out.mode.vdisplay, out.crtc_id, out.conn_id);
    if ((err = dirty_all(fd, &out)) == -ENOSYS)
        /* bochs-drm and other drivers that scan out of the buffer itself have no DIRTYFB. */
        report("kms-dirtyfb", "PASS", "%s %ux%u on %s (no DIRTYFB: scanned out directly)",
               invert ? "inverted-bars" : "bars", out.mode.hdisplay, out.mode.vdisplay, card);
    else if (err)
        report("kms-dirtyfb", "FAIL", "DIRTYFB: %s", strerror(-err));
    else
        report("kms-dirtyfb", "PASS", "%s %ux%u on %s", invert ? "inverted-bars" : "bars",
               out.mode.hdisplay, out.mode.vdisplay, card);

    if (frames) {
        double t0 = now_ms();
        unsigned done = 0;
        for (; done < frames; done++) {
            if (full) {
                /* A grey ramp that moves one step per frame: every pixel differs each time. */
                for (uint32_t y = 0; y < out.mode.vdisplay; y++)
                    for (uint32_t x = 0; x < out.mode.hdisplay; x++)
                        out.map[y * (out.pitch / 4) + x] = ((x + y + done) & 0xff) * 0x010101;
            } else {
                /* A 16x16 block whose shade follows the frame number: each update differs. */
                for (uint32_t y = 0; y < 16; y++)
                    for (uint32_t x = 0; x < 16; x++)
                        out.map[y * (out.pitch / 4) + x] = (done & 0xff) * 0x010101;
            }
            if (dirty_all(fd, &out))
                break;
        }
        double ms = now_ms() - t0;
        report("kms-frames", done == frames ? "PASS" : "FAIL",
               "frames=%u ms=%.1f fps=%.1f size=%ux%u", done, ms, done * 1000.0 / ms,
               out.mode.hdisplay, out.mode.vdisplay);
    }
    if (flips && (err = flip_between(fd, &out, flips, invert)))
        report("kms-flips", "FAIL", "%s", strerror(-err));
    if (hold) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            /* Keep the framebuffer on screen while the guest goes on. */
            for (;;)
                pause();
        }
        report("kms-hold", pid > 0 ? "PASS" : "FAIL", "holder pid %d", (int)pid);
    }
    return vgpu_failures ? 1 : 0;
}
