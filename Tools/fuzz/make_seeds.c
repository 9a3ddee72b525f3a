// Writes the seed corpus of `make fuzz` into the folder given: small PNGs (gray, RGB, 16-bit, several
// compression levels) and JPEGs (baseline, progressive, gray, full chroma) made by CImageShim's own encoders.

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "CImageShim.h"

static int save(const char *folder, const char *name, unsigned char *data, size_t size) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", folder, name);
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); return 1; }
    fwrite(data, 1, size, f);
    fclose(f);
    skd_image_free(data);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: %s FOLDER\n", argv[0]); return 2; }
    unsigned char pixels[2 * 13 * 9 * 3];
    for (size_t i = 0; i < sizeof pixels; i++) pixels[i] = (unsigned char)(i * 37 + (i / 7) * 11);
    unsigned char *data; size_t size; char message[256]; int failed = 0;
    char name[64];
    for (int channels = 1; channels <= 3; channels += 2) {
        for (int depth = 8; depth <= 16; depth += 8) {
            if (skd_png_encode(pixels, 13, 9, channels, depth, depth == 8 ? 9 : 0, &data, &size, message, sizeof message) == 0) {
                snprintf(name, sizeof name, "seed-%dch-%dbit.png", channels, depth);
                failed |= save(argv[1], name, data, size);
            } else { fprintf(stderr, "%s\n", message); failed = 1; }
        }
        for (int progressive = 0; progressive <= 1; progressive++) {
            if (skd_jpeg_encode(pixels, 13, 9, channels, 60, progressive, progressive, &data, &size, message, sizeof message) == 0) {
                snprintf(name, sizeof name, "seed-%dch-%s.jpg", channels, progressive ? "progressive" : "baseline");
                failed |= save(argv[1], name, data, size);
            } else { fprintf(stderr, "%s\n", message); failed = 1; }
        }
    }
    return failed;
}
