// CImageShim: libpng and libjpeg behind an interface that never exits, aborts or prints.
//
// libjpeg's default error handler calls exit() and libpng's longjmps through its own frames; both are
// replaced here by handlers that copy the library's message into a caller buffer and longjmp back to a
// setjmp in the same C function, which then frees everything and returns an error code. Swift only ever
// sees plain return codes, byte buffers and messages.
//
// All functions work on memory buffers: the Swift side reads and writes files (so it can name the file in
// errors and write atomically through a temporary file).

#ifndef SKD_CIMAGESHIM_H
#define SKD_CIMAGESHIM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Largest accepted width or height, and largest accepted number of pixels. A corrupt header that claims
/// a gigantic image fails with a message instead of attempting a huge allocation.
#define SKD_IMAGE_MAX_DIMENSION 65535
#define SKD_IMAGE_MAX_PIXELS (1L << 28)

/// Progressive JPEGs with an absurd number of scans decode slowly (each scan revisits the whole image);
/// more scans than this are treated as corrupt so no input can stall the process.
#define SKD_JPEG_MAX_SCANS 256

/// A decoded image: interleaved samples, rows top to bottom, no padding between rows.
typedef struct {
    /// malloc'd; release with skd_image_free.
    unsigned char *pixels;
    int width;
    int height;
    /// 1 (gray) or 3 (RGB); alpha is always dropped.
    int channels;
    /// 1 (8-bit samples) or 2 (16-bit samples in host byte order).
    int bytes_per_sample;
} skd_decoded_image;

/// Decodes a PNG held in memory. Palette images are expanded to RGB, gray below 8 bits to 8 bits,
/// alpha and tRNS transparency are dropped, 16-bit samples are kept. Returns 0 on success; otherwise
/// non-zero with a NUL-terminated message in `message` and `out->pixels == NULL`.
int skd_png_decode(const unsigned char *data, size_t size, skd_decoded_image *out,
                   char *message, size_t message_capacity);

/// Decodes a baseline or progressive JPEG held in memory to gray (1 channel) or RGB (3 channels).
/// Corrupt-data warnings (including a premature end of file) are treated as errors. CMYK/YCCK files are
/// rejected. Same return convention as skd_png_decode.
int skd_jpeg_decode(const unsigned char *data, size_t size, skd_decoded_image *out,
                    char *message, size_t message_capacity);

/// Reads the pixel size a PNG states (its IHDR chunk, through libpng up to the first image data) without decoding
/// the image. Returns 0 with `*width` and `*height` set; 2 when `data` ends before the header does (call again with
/// more of the file); otherwise 1 with a NUL-terminated message in `message`. Sizes beyond the decode limits above
/// are errors, as they are for skd_png_decode.
int skd_png_probe(const unsigned char *data, size_t size, int *width, int *height,
                  char *message, size_t message_capacity);

/// Reads the pixel size a JPEG states (its frame header, through libjpeg's jpeg_read_header) without decoding the
/// image. Same return convention as skd_png_probe.
int skd_jpeg_probe(const unsigned char *data, size_t size, int *width, int *height,
                   char *message, size_t message_capacity);

/// Encodes interleaved gray (channels 1) or RGB (channels 3) samples as PNG. `bit_depth` is 8 (one byte per
/// sample) or 16 (host-order uint16 per sample). `compression_level` is zlib's 0...9. On success returns 0
/// and a malloc'd buffer in `*out_data` (release with skd_image_free).
int skd_png_encode(const unsigned char *pixels, int width, int height, int channels, int bit_depth,
                   int compression_level, unsigned char **out_data, size_t *out_size,
                   char *message, size_t message_capacity);

/// Encodes 8-bit interleaved gray (channels 1) or RGB (channels 3) samples as JPEG with libjpeg's quality
/// scale 1...100, optionally progressive, with 4:2:0 chroma subsampling unless `full_chroma` is non-zero.
/// Same return convention as skd_png_encode.
int skd_jpeg_encode(const unsigned char *pixels, int width, int height, int channels, int quality,
                    int progressive, int full_chroma, unsigned char **out_data, size_t *out_size,
                    char *message, size_t message_capacity);

/// Releases a buffer returned by the functions above (NULL is allowed).
void skd_image_free(void *pointer);

#ifdef __cplusplus
}
#endif

#endif
