/*
 * ledger: a small bookkeeping app that keeps its state in a SQLite
 * database file, as real C programs do. Built against SQLite's own
 * amalgamation and a current wasi-libc (zig cc), so it exercises the
 * filesystem the way SQLite does: journals created, synced, truncated and
 * deleted, lock directories made and removed, pages read and written at
 * offsets, and plenty of malloc/free churn in between.
 *
 *   ledger DB COMMAND...   with COMMAND one of
 *     add N     add N entries (one transaction per 100), then delete a tenth
 *     report    counts, totals, a join, and PRAGMA integrity_check
 *
 * Output is deterministic, so runs on different filesystems compare line
 * by line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqlite3.h"

static void die(sqlite3 *db, const char *what) {
    fprintf(stderr, "ledger: %s: %s\n", what, db ? sqlite3_errmsg(db) : "out of memory");
    exit(1);
}

static void exec(sqlite3 *db, const char *sql) {
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
        fprintf(stderr, "ledger: %s: %s\n", sql, err ? err : "?");
        exit(1);
    }
}

/* One integer (or text) answer of a query. */
static void show(sqlite3 *db, const char *label, const char *sql) {
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK) die(db, sql);
    while (sqlite3_step(q) == SQLITE_ROW) {
        printf("%s:", label);
        for (int i = 0; i < sqlite3_column_count(q); i++) {
            const unsigned char *v = sqlite3_column_text(q, i);
            printf(" %s", v ? (const char *)v : "NULL");
        }
        printf("\n");
    }
    sqlite3_finalize(q);
}

static void add(sqlite3 *db, long n) {
    exec(db, "CREATE TABLE IF NOT EXISTS account(id INTEGER PRIMARY KEY, name TEXT UNIQUE)");
    exec(db, "CREATE TABLE IF NOT EXISTS entry(id INTEGER PRIMARY KEY, account INTEGER "
             "REFERENCES account(id), cents INTEGER, memo TEXT)");
    exec(db, "CREATE INDEX IF NOT EXISTS entry_account ON entry(account)");
    exec(db, "INSERT OR IGNORE INTO account(name) VALUES ('rent'), ('food'), ('books'), ('travel')");
    sqlite3_int64 start = 0;
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM entry", -1, &q, NULL) != SQLITE_OK) die(db, "count");
    if (sqlite3_step(q) == SQLITE_ROW) start = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);

    if (sqlite3_prepare_v2(db, "INSERT INTO entry(account, cents, memo) VALUES (?, ?, ?)", -1, &q,
                           NULL) != SQLITE_OK)
        die(db, "prepare insert");
    for (long i = 0; i < n; i++) {
        sqlite3_int64 k = start + i;
        if (i % 100 == 0) exec(db, "BEGIN");
        /* A memo of varying length (heap churn, overflow pages now and then). */
        size_t len = 8 + (size_t)(k * 7919 % 600);
        char *memo = malloc(len + 1);
        if (!memo) die(NULL, "memo");
        for (size_t j = 0; j < len; j++) memo[j] = (char)('a' + (k + j) % 26);
        memo[len] = 0;
        sqlite3_bind_int64(q, 1, 1 + k % 4);
        sqlite3_bind_int64(q, 2, (k * 104729) % 100000 - 50000);
        sqlite3_bind_text(q, 3, memo, (int)len, SQLITE_TRANSIENT);
        if (sqlite3_step(q) != SQLITE_DONE) die(db, "insert");
        sqlite3_reset(q);
        free(memo);
        if (i % 100 == 99 || i == n - 1) exec(db, "COMMIT");
    }
    sqlite3_finalize(q);
    /* Some of the old go, so pages are freed and reused. */
    exec(db, "DELETE FROM entry WHERE id % 10 = 3");
    printf("added %ld\n", n);
}

static void report(sqlite3 *db) {
    show(db, "entries", "SELECT count(*), sum(cents), sum(length(memo)) FROM entry");
    show(db, "by account",
         "SELECT group_concat(name || '=' || total, ' ') FROM (SELECT a.name, sum(e.cents) AS total "
         "FROM account a JOIN entry e ON e.account = a.id GROUP BY a.id ORDER BY a.id)");
    show(db, "largest", "SELECT id, cents FROM entry ORDER BY cents DESC, id LIMIT 1");
    show(db, "integrity", "PRAGMA integrity_check");
}

static int usage(void) {
    fprintf(stderr, "usage: ledger DB (add N | report)...\n");
    return 2;
}

int main(int argc, char **argv) {
    if (argc < 3) return usage();
    sqlite3 *db;
    if (sqlite3_open(argv[1], &db) != SQLITE_OK) die(db, argv[1]);
    exec(db, "PRAGMA foreign_keys = ON");
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "add") == 0 && i + 1 < argc) {
            add(db, atol(argv[++i]));
        } else if (strcmp(argv[i], "report") == 0) {
            report(db);
        } else {
            return usage();
        }
    }
    if (sqlite3_close(db) != SQLITE_OK) die(db, "close");
    return 0;
}
