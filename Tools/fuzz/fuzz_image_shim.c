// libFuzzer harness for CSystem/CImageShim (`make fuzz`): any byte string handed to the PNG and JPEG decoders
// must come back as a return code and a message, never a crash, hang, leak or out-of-bounds access
// (built with -fsanitize=fuzzer,address,undefined). Decoded images are re-encoded, exercising the encoders on
// every shape the decoders produce. The header probes must agree with the decoders: a file that decodes states
// its size to the probe, and the probe never reports a size the decoder contradicts.

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "CImageShim.h"

static void check_decoded(const skd_decoded_image *image) {
    // Touch every sample: ASan reports a buffer shorter than the stated size.
    size_t n = (size_t)image->width * image->height * image->channels * image->bytes_per_sample;
    volatile unsigned sum = 0;
    for (size_t i = 0; i < n; i++) sum += image->pixels[i];
    (void)sum;
    unsigned char *encoded = NULL;
    size_t encoded_size = 0;
    char message[256];
    if (skd_png_encode(image->pixels, image->width, image->height, image->channels, 8 * image->bytes_per_sample, 1,
                       &encoded, &encoded_size, message, sizeof message) == 0) {
        skd_decoded_image again;
        if (skd_png_decode(encoded, encoded_size, &again, message, sizeof message) == 0) {
            // A lossless round trip.
            if (again.width != image->width || again.height != image->height || memcmp(again.pixels, image->pixels, n) != 0) abort();
            skd_image_free(again.pixels);
        } else {
            abort();
        }
        skd_image_free(encoded);
    }
    if (image->bytes_per_sample == 1 &&
        skd_jpeg_encode(image->pixels, image->width, image->height, image->channels, 75, 0, 0, &encoded, &encoded_size,
                        message, sizeof message) == 0) {
        skd_image_free(encoded);
    }
}

/// The probe's convention (0, 1 or 2; a size only with 0; a terminated message), and agreement with a decode that
/// succeeded (`decoded` non-NULL).
static void check_probe(int status, int width, int height, const char *message, size_t capacity,
                        const skd_decoded_image *decoded) {
    if (status != 0 && status != 1 && status != 2) abort();
    if (status != 0 && (width != 0 || height != 0)) abort();
    if (memchr(message, 0, capacity) == NULL) abort();
    if (decoded != NULL && (status != 0 || width != decoded->width || height != decoded->height)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    skd_decoded_image image;
    char message[256];
    int width = 0, height = 0;
    int probed = skd_png_probe(data, size, &width, &height, message, sizeof message);
    if (skd_png_decode(data, size, &image, message, sizeof message) == 0) {
        check_probe(probed, width, height, message, sizeof message, &image);
        check_decoded(&image);
        skd_image_free(image.pixels);
    } else if (image.pixels != NULL || memchr(message, 0, sizeof message) == NULL) {
        abort();  // the failure convention: no buffer, a terminated message
    } else {
        check_probe(probed, width, height, message, sizeof message, NULL);
    }
    probed = skd_jpeg_probe(data, size, &width, &height, message, sizeof message);
    if (skd_jpeg_decode(data, size, &image, message, sizeof message) == 0) {
        check_probe(probed, width, height, message, sizeof message, &image);
        check_decoded(&image);
        skd_image_free(image.pixels);
    } else if (image.pixels != NULL || memchr(message, 0, sizeof message) == NULL) {
        abort();
    } else {
        check_probe(probed, width, height, message, sizeof message, NULL);
    }
    return 0;
}
