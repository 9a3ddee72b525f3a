// CImageShim: setjmp-guarded libpng / libjpeg(-turbo) codecs over memory buffers.
//
// Every entry point keeps its state in a calloc'd context, so the values seen after a longjmp are the ones
// stored before it (automatic variables modified between setjmp and longjmp would be indeterminate).
// The libraries' error handlers copy the message and longjmp to that entry point's setjmp; the entry point
// then releases the library objects and every buffer it allocated, and returns non-zero.

#include "CImageShim.h"

#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>
#include <jpeglib.h>
#include <jerror.h>

void skd_image_free(void *pointer) { free(pointer); }

static void copy_message(char *message, size_t capacity, const char *text) {
    if (message == NULL || capacity == 0) return;
    snprintf(message, capacity, "%s", text ? text : "unknown error");
}

static int host_is_little_endian(void) {
    const uint16_t probe = 1;
    return *(const unsigned char *)&probe == 1;
}

/// Rejects sizes that are zero, beyond the format limits we accept, or whose buffer would overflow.
static const char *check_dimensions(long width, long height) {
    if (width <= 0 || height <= 0) return "image has a zero dimension";
    if (width > SKD_IMAGE_MAX_DIMENSION || height > SKD_IMAGE_MAX_DIMENSION)
        return "image dimensions exceed the 65535-pixel limit";
    if (width * height > SKD_IMAGE_MAX_PIXELS) return "image has more pixels than the 2^28 limit";
    return NULL;
}

// MARK: - PNG

typedef struct {
    jmp_buf jump;
    char *message;
    size_t message_capacity;
    char warning[256];
    // Reading.
    const unsigned char *input;
    size_t input_size;
    size_t input_offset;
    /// Set when a read went past the end of `input` (probing: more of the file may complete the header).
    int ran_out;
    png_bytep *rows;
    unsigned char *pixels;
    // Writing.
    unsigned char *output;
    size_t output_size;
    size_t output_capacity;
} png_context;

static void png_on_error(png_structp png, png_const_charp text) {
    png_context *context = (png_context *)png_get_error_ptr(png);
    if (context->warning[0] != 0) {
        // libpng often reports the specific problem as a warning before a generic error
        // ("Image width exceeds user limit in IHDR", then "Invalid IHDR data").
        char combined[512];
        snprintf(combined, sizeof combined, "%s (%s)", text ? text : "unknown error", context->warning);
        copy_message(context->message, context->message_capacity, combined);
    } else {
        copy_message(context->message, context->message_capacity, text);
    }
    longjmp(context->jump, 1);
}

static void png_on_warning(png_structp png, png_const_charp text) {
    // Warnings concern ancillary data (bad text chunks, CRC errors in optional chunks) or precede an error;
    // the last one is kept for the error message instead of being printed into training logs.
    png_context *context = (png_context *)png_get_error_ptr(png);
    snprintf(context->warning, sizeof context->warning, "%s", text ? text : "");
}

static void png_read_memory(png_structp png, png_bytep destination, png_size_t length) {
    png_context *context = (png_context *)png_get_io_ptr(png);
    if (length > context->input_size - context->input_offset) {
        context->ran_out = 1;
        png_error(png, "file is truncated");
    }
    memcpy(destination, context->input + context->input_offset, length);
    context->input_offset += length;
}

static void png_write_memory(png_structp png, png_bytep source, png_size_t length) {
    png_context *context = (png_context *)png_get_io_ptr(png);
    if (length > context->output_capacity - context->output_size) {
        size_t capacity = context->output_capacity ? context->output_capacity : 65536;
        while (capacity - context->output_size < length) capacity *= 2;
        unsigned char *grown = (unsigned char *)realloc(context->output, capacity);
        if (grown == NULL) png_error(png, "out of memory while encoding");
        context->output = grown;
        context->output_capacity = capacity;
    }
    memcpy(context->output + context->output_size, source, length);
    context->output_size += length;
}

static void png_flush_memory(png_structp png) { (void)png; }

/// A reading context over `data` with libpng's read and info structures, or NULL ("out of memory" in `message`)
/// with nothing left allocated. The caller sets its own setjmp before the first libpng call that can fail.
static png_context *png_open_reader(const unsigned char *data, size_t size, char *message, size_t message_capacity,
                                    png_structp *png, png_infop *info) {
    png_context *context = (png_context *)calloc(1, sizeof(png_context));
    if (context == NULL) {
        copy_message(message, message_capacity, "out of memory");
        return NULL;
    }
    context->message = message;
    context->message_capacity = message_capacity;
    context->input = data;
    context->input_size = size;
    *png = png_create_read_struct(PNG_LIBPNG_VER_STRING, context, png_on_error, png_on_warning);
    *info = *png ? png_create_info_struct(*png) : NULL;
    if (*png == NULL || *info == NULL) {
        if (*png) png_destroy_read_struct(png, NULL, NULL);
        free(context);
        copy_message(message, message_capacity, "out of memory");
        return NULL;
    }
    return context;
}

int skd_png_decode(const unsigned char *data, size_t size, skd_decoded_image *out,
                   char *message, size_t message_capacity) {
    memset(out, 0, sizeof *out);
    copy_message(message, message_capacity, "");
    png_structp png = NULL;
    png_infop info = NULL;
    png_context *context = png_open_reader(data, size, message, message_capacity, &png, &info);
    if (context == NULL) return 1;
    // `png` and `info` are not modified after this point, so they are valid after a longjmp.
    if (setjmp(context->jump)) {
        png_destroy_read_struct(&png, &info, NULL);
        free(context->rows);
        free(context->pixels);
        free(context);
        return 1;
    }

    png_set_read_fn(png, context, png_read_memory);
    png_set_user_limits(png, SKD_IMAGE_MAX_DIMENSION, SKD_IMAGE_MAX_DIMENSION);
    png_read_info(png, info);

    png_uint_32 width = 0, height = 0;
    int bit_depth = 0, color_type = 0, interlace = 0;
    png_get_IHDR(png, info, &width, &height, &bit_depth, &color_type, &interlace, NULL, NULL);
    const char *bad_size = check_dimensions((long)width, (long)height);
    if (bad_size) png_error(png, bad_size);

    if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    // libpng 1.6's palette expansion also turns tRNS into an alpha channel; transparency of any kind is
    // dropped like an alpha channel.
    if ((color_type & PNG_COLOR_MASK_ALPHA) || png_get_valid(png, info, PNG_INFO_tRNS)) png_set_strip_alpha(png);
    if (bit_depth == 16 && host_is_little_endian()) png_set_swap(png);
    if (interlace != PNG_INTERLACE_NONE) png_set_interlace_handling(png);
    png_read_update_info(png, info);

    int channels = png_get_channels(png, info);
    int depth = png_get_bit_depth(png, info);
    if ((channels != 1 && channels != 3) || (depth != 8 && depth != 16))
        png_error(png, "unsupported PNG sample layout after conversion");
    size_t row_bytes = png_get_rowbytes(png, info);
    size_t bytes_per_sample = (size_t)depth / 8;
    if (row_bytes != (size_t)width * (size_t)channels * bytes_per_sample)
        png_error(png, "unexpected PNG row size");

    context->pixels = (unsigned char *)malloc(row_bytes * height);
    context->rows = (png_bytep *)malloc(sizeof(png_bytep) * height);
    if (context->pixels == NULL || context->rows == NULL) png_error(png, "out of memory while decoding");
    for (png_uint_32 y = 0; y < height; y++) context->rows[y] = context->pixels + row_bytes * y;
    png_read_image(png, context->rows);
    // Reading to IEND makes a file cut after its last IDAT an error rather than a silent success.
    png_read_end(png, NULL);

    png_destroy_read_struct(&png, &info, NULL);
    out->pixels = context->pixels;
    out->width = (int)width;
    out->height = (int)height;
    out->channels = channels;
    out->bytes_per_sample = (int)bytes_per_sample;
    free(context->rows);
    free(context);
    return 0;
}

int skd_png_probe(const unsigned char *data, size_t size, int *width, int *height,
                  char *message, size_t message_capacity) {
    *width = 0;
    *height = 0;
    copy_message(message, message_capacity, "");
    png_structp png = NULL;
    png_infop info = NULL;
    png_context *context = png_open_reader(data, size, message, message_capacity, &png, &info);
    if (context == NULL) return 1;
    if (setjmp(context->jump)) {
        int status = context->ran_out ? 2 : 1;
        png_destroy_read_struct(&png, &info, NULL);
        free(context);
        return status;
    }
    png_set_read_fn(png, context, png_read_memory);
    png_set_user_limits(png, SKD_IMAGE_MAX_DIMENSION, SKD_IMAGE_MAX_DIMENSION);
    png_read_info(png, info);
    png_uint_32 w = 0, h = 0;
    int bit_depth = 0, color_type = 0;
    png_get_IHDR(png, info, &w, &h, &bit_depth, &color_type, NULL, NULL, NULL);
    const char *bad_size = check_dimensions((long)w, (long)h);
    if (bad_size) png_error(png, bad_size);
    png_destroy_read_struct(&png, &info, NULL);
    free(context);
    *width = (int)w;
    *height = (int)h;
    return 0;
}

int skd_png_encode(const unsigned char *pixels, int width, int height, int channels, int bit_depth,
                   int compression_level, unsigned char **out_data, size_t *out_size,
                   char *message, size_t message_capacity) {
    *out_data = NULL;
    *out_size = 0;
    copy_message(message, message_capacity, "");
    const char *bad_size = check_dimensions(width, height);
    if (bad_size) {
        copy_message(message, message_capacity, bad_size);
        return 1;
    }
    if ((channels != 1 && channels != 3) || (bit_depth != 8 && bit_depth != 16)) {
        copy_message(message, message_capacity, "PNG encoding takes 1 or 3 channels of 8 or 16 bits");
        return 1;
    }
    png_context *context = (png_context *)calloc(1, sizeof(png_context));
    if (context == NULL) {
        copy_message(message, message_capacity, "out of memory");
        return 1;
    }
    context->message = message;
    context->message_capacity = message_capacity;

    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, context, png_on_error, png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (png == NULL || info == NULL) {
        if (png) png_destroy_write_struct(&png, NULL);
        free(context);
        copy_message(message, message_capacity, "out of memory");
        return 1;
    }
    if (setjmp(context->jump)) {
        png_destroy_write_struct(&png, &info);
        free(context->rows);
        free(context->output);
        free(context);
        return 1;
    }

    png_set_write_fn(png, context, png_write_memory, png_flush_memory);
    png_set_compression_level(png, compression_level < 0 ? 0 : (compression_level > 9 ? 9 : compression_level));
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, bit_depth,
                 channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    if (bit_depth == 16 && host_is_little_endian()) png_set_swap(png);

    size_t row_bytes = (size_t)width * (size_t)channels * (size_t)(bit_depth / 8);
    context->rows = (png_bytep *)malloc(sizeof(png_bytep) * (size_t)height);
    if (context->rows == NULL) png_error(png, "out of memory while encoding");
    // libpng takes non-const rows but does not write to them when encoding.
    for (int y = 0; y < height; y++) context->rows[y] = (png_bytep)(pixels + row_bytes * (size_t)y);
    png_write_image(png, context->rows);
    png_write_end(png, NULL);

    png_destroy_write_struct(&png, &info);
    *out_data = context->output;
    *out_size = context->output_size;
    free(context->rows);
    free(context);
    return 0;
}

// MARK: - JPEG

typedef struct {
    struct jpeg_error_mgr manager;  // first member: libjpeg hands back a pointer to it
    struct jpeg_progress_mgr progress;
    struct jpeg_destination_mgr destination;
    jmp_buf jump;
    char *message;
    size_t message_capacity;
    /// Set when libjpeg reached the end of the data (probing: more of the file may complete the header).
    int ran_out;
    unsigned char *pixels;
    unsigned char *output;
    size_t output_capacity;
    size_t output_size;
    struct jpeg_decompress_struct decoder;
    struct jpeg_compress_struct encoder;
} jpeg_context;

static void jpeg_on_error(j_common_ptr info) {
    jpeg_context *context = (jpeg_context *)info->err;
    char text[JMSG_LENGTH_MAX];
    (*info->err->format_message)(info, text);
    copy_message(context->message, context->message_capacity, text);
    longjmp(context->jump, 1);
}

static void jpeg_on_message(j_common_ptr info, int level) {
    if (level >= 0) return;  // trace messages
    switch (info->err->msg_code) {
    // Unusual but harmless metadata: the pixels decode correctly.
    case JWRN_JFIF_MAJOR:
    case JWRN_ADOBE_XFORM:
    case JWRN_BOGUS_ICC:
        return;
    case JWRN_JPEG_EOF:
        ((jpeg_context *)info->err)->ran_out = 1;
        jpeg_on_error(info);
        return;
    default:
        // Corrupt entropy data and a premature end of file are warnings to libjpeg, which then
        // fills the rest of the image with gray. A dataset loader must not train on that.
        jpeg_on_error(info);
    }
}

static void jpeg_silent_output(j_common_ptr info) { (void)info; }

static void jpeg_on_progress(j_common_ptr info) {
    if (!info->is_decompressor) return;
    j_decompress_ptr decoder = (j_decompress_ptr)info;
    if (decoder->input_scan_number > SKD_JPEG_MAX_SCANS) {
        jpeg_context *context = (jpeg_context *)info->err;
        copy_message(context->message, context->message_capacity,
                     "progressive JPEG has more scans than the limit of 256 (corrupt or hostile file)");
        longjmp(context->jump, 1);
    }
}

static void jpeg_install_handlers(jpeg_context *context) {
    jpeg_std_error(&context->manager);
    context->manager.error_exit = jpeg_on_error;
    context->manager.emit_message = jpeg_on_message;
    context->manager.output_message = jpeg_silent_output;
}

/// A zeroed context with the error handlers installed, or NULL ("out of memory" in `message`).
static jpeg_context *jpeg_new_context(char *message, size_t message_capacity) {
    jpeg_context *context = (jpeg_context *)calloc(1, sizeof(jpeg_context));
    if (context == NULL) {
        copy_message(message, message_capacity, "out of memory");
        return NULL;
    }
    context->message = message;
    context->message_capacity = message_capacity;
    jpeg_install_handlers(context);
    return context;
}

int skd_jpeg_decode(const unsigned char *data, size_t size, skd_decoded_image *out,
                    char *message, size_t message_capacity) {
    memset(out, 0, sizeof *out);
    copy_message(message, message_capacity, "");
    if (size == 0) {
        copy_message(message, message_capacity, "file is empty");
        return 1;
    }
    jpeg_context *context = jpeg_new_context(message, message_capacity);
    if (context == NULL) return 1;
    j_decompress_ptr decoder = &context->decoder;
    decoder->err = &context->manager;
    if (setjmp(context->jump)) {
        jpeg_destroy_decompress(decoder);
        free(context->pixels);
        free(context);
        return 1;
    }
    jpeg_create_decompress(decoder);
    context->progress.progress_monitor = jpeg_on_progress;
    decoder->progress = &context->progress;
    jpeg_mem_src(decoder, data, (unsigned long)size);
    jpeg_read_header(decoder, TRUE);

    const char *bad_size = check_dimensions((long)decoder->image_width, (long)decoder->image_height);
    if (bad_size) {
        copy_message(message, message_capacity, bad_size);
        longjmp(context->jump, 1);
    }
    if (decoder->jpeg_color_space == JCS_CMYK || decoder->jpeg_color_space == JCS_YCCK) {
        copy_message(message, message_capacity, "CMYK/YCCK JPEGs are not supported");
        longjmp(context->jump, 1);
    }
    decoder->out_color_space = decoder->jpeg_color_space == JCS_GRAYSCALE ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(decoder);

    int channels = decoder->output_components;
    if (channels != 1 && channels != 3) {
        copy_message(message, message_capacity, "unexpected JPEG component count");
        longjmp(context->jump, 1);
    }
    size_t row_bytes = (size_t)decoder->output_width * (size_t)channels;
    context->pixels = (unsigned char *)malloc(row_bytes * decoder->output_height);
    if (context->pixels == NULL) {
        copy_message(message, message_capacity, "out of memory while decoding");
        longjmp(context->jump, 1);
    }
    while (decoder->output_scanline < decoder->output_height) {
        JSAMPROW row = context->pixels + row_bytes * decoder->output_scanline;
        if (jpeg_read_scanlines(decoder, &row, 1) != 1) {
            copy_message(message, message_capacity, "JPEG decoder stalled");
            longjmp(context->jump, 1);
        }
    }
    // Reads to EOI: a file cut inside the last scan raises "Premature end of JPEG file" here.
    jpeg_finish_decompress(decoder);

    out->pixels = context->pixels;
    out->width = (int)decoder->output_width;
    out->height = (int)decoder->output_height;
    out->channels = channels;
    out->bytes_per_sample = 1;
    jpeg_destroy_decompress(decoder);
    free(context);
    return 0;
}

int skd_jpeg_probe(const unsigned char *data, size_t size, int *width, int *height,
                   char *message, size_t message_capacity) {
    *width = 0;
    *height = 0;
    copy_message(message, message_capacity, "");
    if (size == 0) return 2;
    jpeg_context *context = jpeg_new_context(message, message_capacity);
    if (context == NULL) return 1;
    j_decompress_ptr decoder = &context->decoder;
    decoder->err = &context->manager;
    if (setjmp(context->jump)) {
        int status = context->ran_out ? 2 : 1;
        jpeg_destroy_decompress(decoder);
        free(context);
        return status;
    }
    jpeg_create_decompress(decoder);
    jpeg_mem_src(decoder, data, (unsigned long)size);
    jpeg_read_header(decoder, TRUE);
    const char *bad_size = check_dimensions((long)decoder->image_width, (long)decoder->image_height);
    if (bad_size) {
        copy_message(message, message_capacity, bad_size);
        longjmp(context->jump, 1);
    }
    *width = (int)decoder->image_width;
    *height = (int)decoder->image_height;
    jpeg_destroy_decompress(decoder);
    free(context);
    return 0;
}

// A destination that grows a buffer owned by the context (libjpeg-turbo's jpeg_mem_dest leaves a dangling
// pointer when an error interrupts it after growing, so its buffer could not be freed safely).
static void jpeg_destination_init(j_compress_ptr encoder) {
    jpeg_context *context = (jpeg_context *)encoder->err;
    context->output_capacity = 65536;
    context->output = (unsigned char *)malloc(context->output_capacity);
    if (context->output == NULL) ERREXIT1(encoder, JERR_OUT_OF_MEMORY, 0);
    context->destination.next_output_byte = context->output;
    context->destination.free_in_buffer = context->output_capacity;
}

static boolean jpeg_destination_empty(j_compress_ptr encoder) {
    jpeg_context *context = (jpeg_context *)encoder->err;
    size_t used = context->output_capacity;
    unsigned char *grown = (unsigned char *)realloc(context->output, used * 2);
    if (grown == NULL) ERREXIT1(encoder, JERR_OUT_OF_MEMORY, 1);
    context->output = grown;
    context->output_capacity = used * 2;
    context->destination.next_output_byte = grown + used;
    context->destination.free_in_buffer = used;
    return TRUE;
}

static void jpeg_destination_term(j_compress_ptr encoder) {
    jpeg_context *context = (jpeg_context *)encoder->err;
    context->output_size = context->output_capacity - context->destination.free_in_buffer;
}

int skd_jpeg_encode(const unsigned char *pixels, int width, int height, int channels, int quality,
                    int progressive, int full_chroma, unsigned char **out_data, size_t *out_size,
                    char *message, size_t message_capacity) {
    *out_data = NULL;
    *out_size = 0;
    copy_message(message, message_capacity, "");
    const char *bad_size = check_dimensions(width, height);
    if (bad_size) {
        copy_message(message, message_capacity, bad_size);
        return 1;
    }
    if (channels != 1 && channels != 3) {
        copy_message(message, message_capacity, "JPEG encoding takes 1 or 3 channels");
        return 1;
    }
    jpeg_context *context = jpeg_new_context(message, message_capacity);
    if (context == NULL) return 1;
    j_compress_ptr encoder = &context->encoder;
    encoder->err = &context->manager;
    if (setjmp(context->jump)) {
        jpeg_destroy_compress(encoder);
        free(context->output);
        free(context);
        return 1;
    }
    jpeg_create_compress(encoder);
    context->destination.init_destination = jpeg_destination_init;
    context->destination.empty_output_buffer = jpeg_destination_empty;
    context->destination.term_destination = jpeg_destination_term;
    encoder->dest = &context->destination;

    encoder->image_width = (JDIMENSION)width;
    encoder->image_height = (JDIMENSION)height;
    encoder->input_components = channels;
    encoder->in_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(encoder);
    jpeg_set_quality(encoder, quality < 1 ? 1 : (quality > 100 ? 100 : quality), TRUE);
    if (full_chroma && channels == 3) {
        encoder->comp_info[0].h_samp_factor = 1;
        encoder->comp_info[0].v_samp_factor = 1;
    }
    if (progressive) jpeg_simple_progression(encoder);
    jpeg_start_compress(encoder, TRUE);
    size_t row_bytes = (size_t)width * (size_t)channels;
    while (encoder->next_scanline < encoder->image_height) {
        // libjpeg takes non-const rows but only reads them when compressing.
        JSAMPROW row = (JSAMPROW)(pixels + row_bytes * encoder->next_scanline);
        jpeg_write_scanlines(encoder, &row, 1);
    }
    jpeg_finish_compress(encoder);
    jpeg_destroy_compress(encoder);

    *out_data = context->output;
    *out_size = context->output_size;
    free(context);
    return 0;
}
