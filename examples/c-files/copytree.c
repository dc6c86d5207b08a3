/*
 * copytree: what `cp -r` and Python's shutil.copytree do to a filesystem,
 * for Larder's benchmark of closes in a burst. Makes COUNT small files in
 * DIR/src (each written and closed), then copies each to DIR/dst (read,
 * written, closed): 2 x COUNT closes of written files, no fsync.
 *
 *   copytree DIR COUNT SIZE
 *
 * Prints how many files and bytes it copied; the time the work took
 * (process start-up left out) goes to stderr as `elapsed: SECONDS`.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static void die(const char *what) {
    fprintf(stderr, "copytree: %s: %s\n", what, strerror(errno));
    exit(1);
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: copytree DIR COUNT SIZE\n");
        return 2;
    }
    const char *dir = argv[1];
    long count = atol(argv[2]), size = atol(argv[3]);
    if (count < 0 || size < 0 || size > (1 << 20)) {
        fprintf(stderr, "copytree: COUNT must be >= 0, SIZE from 0 to 1 MiB\n");
        return 2;
    }
    char *buf = malloc(size ? size : 1);
    if (!buf) die("malloc");
    char src[4096], dst[4096];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    snprintf(src, sizeof src, "%s/src", dir);
    if (mkdir(src, 0755) != 0) die(src);
    for (long i = 0; i < count; i++) {
        for (long j = 0; j < size; j++) buf[j] = (char)('a' + (i + j) % 26);
        snprintf(src, sizeof src, "%s/src/file-%04ld.txt", dir, i);
        FILE *f = fopen(src, "wb");
        if (!f || fwrite(buf, 1, size, f) != (size_t)size || fclose(f) != 0) die(src);
    }
    snprintf(dst, sizeof dst, "%s/dst", dir);
    if (mkdir(dst, 0755) != 0) die(dst);
    long bytes = 0;
    for (long i = 0; i < count; i++) {
        snprintf(src, sizeof src, "%s/src/file-%04ld.txt", dir, i);
        snprintf(dst, sizeof dst, "%s/dst/file-%04ld.txt", dir, i);
        FILE *in = fopen(src, "rb");
        if (!in) die(src);
        FILE *out = fopen(dst, "wb");
        if (!out) die(dst);
        size_t n;
        while ((n = fread(buf, 1, size ? size : 1, in)) > 0) {
            if (fwrite(buf, 1, n, out) != n) die(dst);
            bytes += (long)n;
        }
        if (ferror(in) || fclose(in) != 0) die(src);
        if (fclose(out) != 0) die(dst);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("copied %ld files, %ld bytes\n", count, bytes);
    fprintf(stderr, "elapsed: %.6f\n", (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
    free(buf);
    return 0;
}
