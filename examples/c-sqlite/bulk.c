/*
 * bulk: the database workload Larder's benchmark times. SQLite (its
 * amalgamation, default rollback journal) fills a table in transactions,
 * each commit syncing the database and its journal as SQLite always does,
 * then builds an index, queries through it and checks the whole file.
 *
 *   bulk DB ROWS BATCH   insert ROWS rows, BATCH per transaction
 *
 * Output is deterministic, so runs on different filesystems compare line
 * by line; the time the workload took (process start-up left out) goes to
 * stderr as `elapsed: SECONDS`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "sqlite3.h"

static void die(sqlite3 *db, const char *what) {
    fprintf(stderr, "bulk: %s: %s\n", what, db ? sqlite3_errmsg(db) : "out of memory");
    exit(1);
}

static void exec(sqlite3 *db, const char *sql) {
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
        fprintf(stderr, "bulk: %s: %s\n", sql, err ? err : "?");
        exit(1);
    }
}

/* Prints every row of a query, columns separated by spaces. */
static void show(sqlite3 *db, const char *label, const char *sql) {
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK) die(db, sql);
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        printf("%s:", label);
        for (int i = 0; i < sqlite3_column_count(q); i++) {
            const unsigned char *v = sqlite3_column_text(q, i);
            printf(" %s", v ? (const char *)v : "NULL");
        }
        printf("\n");
    }
    if (rc != SQLITE_DONE) die(db, sql);
    sqlite3_finalize(q);
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: bulk DB ROWS BATCH\n");
        return 2;
    }
    long rows = atol(argv[2]), batch = atol(argv[3]);
    if (rows < 0 || batch < 1) {
        fprintf(stderr, "bulk: ROWS must be >= 0 and BATCH >= 1\n");
        return 2;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    sqlite3 *db;
    if (sqlite3_open(argv[1], &db) != SQLITE_OK) die(db, argv[1]);
    /* Sorts for the index in memory: a WASI app has no temporary directory. */
    exec(db, "PRAGMA temp_store = MEMORY");
    exec(db, "CREATE TABLE IF NOT EXISTS item(id INTEGER PRIMARY KEY, sku TEXT, qty INTEGER, "
             "price INTEGER, note TEXT)");
    sqlite3_stmt *ins;
    if (sqlite3_prepare_v2(db, "INSERT INTO item(sku, qty, price, note) VALUES (?, ?, ?, ?)", -1,
                           &ins, NULL) != SQLITE_OK)
        die(db, "prepare");
    char sku[32], note[96];
    for (long i = 0; i < rows; i++) {
        if (i % batch == 0) exec(db, "BEGIN");
        snprintf(sku, sizeof sku, "sku-%08ld", (i * 7919) % 1000003);
        snprintf(note, sizeof note, "row %ld of a bulk load, kept for the benchmark's checks", i);
        sqlite3_bind_text(ins, 1, sku, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(ins, 2, (i * 31) % 997);
        sqlite3_bind_int64(ins, 3, (i * 104729) % 100000);
        sqlite3_bind_text(ins, 4, note, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(ins) != SQLITE_DONE) die(db, "insert");
        sqlite3_reset(ins);
        if (i % batch == batch - 1 || i == rows - 1) exec(db, "COMMIT");
    }
    sqlite3_finalize(ins);
    exec(db, "CREATE INDEX IF NOT EXISTS item_sku ON item(sku)");
    show(db, "rows", "SELECT count(*), sum(qty), sum(price) FROM item");
    show(db, "by sku", "SELECT count(*), min(id), max(id) FROM item WHERE sku BETWEEN 'sku-00100000' AND 'sku-00200000'");
    show(db, "top qty", "SELECT qty, count(*) FROM item GROUP BY qty ORDER BY count(*) DESC, qty LIMIT 3");
    show(db, "integrity", "PRAGMA integrity_check");
    if (sqlite3_close(db) != SQLITE_OK) die(db, "close");
    clock_gettime(CLOCK_MONOTONIC, &t1);
    fprintf(stderr, "elapsed: %.6f\n", (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
    return 0;
}
