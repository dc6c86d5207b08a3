/* A C program on wasi-libc: keeps notes in a directory, using the POSIX
 * calls C programs use (open/read/write/lseek/fstat/opendir/rename/unlink,
 * stdio), and prints what it sees. Built for wasm32-wasi (preview 1) and
 * made a component with the preview1 adapter from wasmtime's release. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void check(const char *what, int ok) {
    if (ok)
        printf("%s: ok\n", what);
    else
        printf("%s: err %s\n", what, strerror(errno));
}

int main(void) {
    /* A bundled, read-only greeting, if the app was composed with one. */
    FILE *g = fopen("/etc/notes/greeting", "r");
    if (g) {
        char line[128] = {0};
        if (fgets(line, sizeof line, g))
            printf("greeting: %s", line);
        fclose(g);
        FILE *w = fopen("/etc/notes/greeting", "w");
        check("write-greeting", w != NULL);
        if (w)
            fclose(w);
    } else {
        printf("greeting: none (%s)\n", strerror(errno));
    }

    check("mkdir", mkdir("/notes", 0755) == 0 || errno == EEXIST);
    int fd = open("/notes/a.txt", O_CREAT | O_RDWR | O_TRUNC, 0644);
    check("open", fd >= 0);
    const char *text = "first note\n";
    check("write", write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    check("seek", lseek(fd, 100000, SEEK_SET) == 100000);
    check("write-after-hole", write(fd, "end\n", 4) == 4);
    struct stat st;
    check("fstat", fstat(fd, &st) == 0);
    printf("size: %lld\n", (long long)st.st_size);
    char buf[16] = {0};
    check("pread", pread(fd, buf, 10, 0) == 10);
    printf("pread: %s\n", buf);
    check("ftruncate", ftruncate(fd, 11) == 0);
    close(fd);

    check("rename", rename("/notes/a.txt", "/notes/b.txt") == 0);
    check("open-missing", open("/notes/a.txt", O_RDONLY) >= 0);
    check("symlink", symlink("b.txt", "/notes/link") == 0);
    char target[64] = {0};
    check("readlink", readlink("/notes/link", target, sizeof target - 1) > 0);
    printf("readlink: %s\n", target);
    check("link", link("/notes/b.txt", "/notes/hard") == 0);
    check("stat-links", stat("/notes/b.txt", &st) == 0 && st.st_nlink == 2);

    DIR *d = opendir("/notes");
    check("opendir", d != NULL);
    int entries = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            entries++;
    if (d)
        closedir(d);
    printf("entries: %d\n", entries);

    FILE *f = fopen("/notes/b.txt", "r");
    char line[64] = {0};
    check("fgets", f && fgets(line, sizeof line, f));
    printf("note: %s", line);
    if (f)
        fclose(f);

    check("unlink", unlink("/notes/link") == 0 && unlink("/notes/hard") == 0 &&
                        unlink("/notes/b.txt") == 0);
    check("rmdir", rmdir("/notes") == 0);
    check("escape", open("/../etc/passwd", O_RDONLY) >= 0);
    return 0;
}
