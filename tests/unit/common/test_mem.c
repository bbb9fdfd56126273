/*
 * eddy — unit tests for src/common/mem.c: the arena allocator, growth of
 * arrays, and the bounded formatter.
 * Copyright (c) 2026 the eddy authors. MIT licence (see LICENSE).
 */
#include "test_util.h"

#include "common/internal.h"

static void test_arena_alignment_and_distinct(void **state)
{
    (void)state;
    eddy__arena_t ar;
    eddy__arena_init(&ar, 256);
    unsigned char *prev = NULL;
    size_t prev_size = 0;
    for (size_t size = 0; size < 100; size++) {
        unsigned char *p = eddy__arena_alloc(&ar, size);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % 8, 0);
        memset(p, (int)size, size);
        if (prev != NULL) {
            /* The previous block is untouched by this allocation. */
            for (size_t i = 0; i < prev_size; i++) {
                assert_int_equal(prev[i], (unsigned char)prev_size);
            }
        }
        prev = p;
        prev_size = size;
    }
    /* Bytes handed out are counted rounded up to 8. */
    size_t expect = 0;
    for (size_t size = 0; size < 100; size++) {
        expect += (size + 7) & ~(size_t)7;
    }
    assert_int_equal(ar.ar_bytes, expect);
    eddy__arena_close(&ar);
    assert_null(ar.ar_head);
    assert_int_equal(ar.ar_bytes, 0);
}

static void test_arena_large_allocation(void **state)
{
    (void)state;
    eddy__arena_t ar;
    eddy__arena_init(&ar, 1024);
    unsigned char *small = eddy__arena_alloc(&ar, 10);
    memcpy(small, "0123456789", 10);
    /* Far larger than a chunk: gets a chunk of its own. */
    size_t big_size = 1 << 20;
    unsigned char *big = eddy__arena_alloc(&ar, big_size);
    assert_non_null(big);
    for (size_t i = 0; i < big_size; i++) {
        big[i] = (unsigned char)(i * 13);
    }
    assert_memory_equal(small, "0123456789", 10);
    for (size_t i = 0; i < big_size; i++) {
        assert_int_equal(big[i], (unsigned char)(i * 13));
    }
    eddy__arena_close(&ar);
}

static void test_arena_reset_keeps_largest_chunk(void **state)
{
    (void)state;
    eddy__arena_t ar;
    eddy__arena_init(&ar, 1024);
    for (int i = 0; i < 50; i++) {
        assert_non_null(eddy__arena_alloc(&ar, 500));
    }
    assert_non_null(eddy__arena_alloc(&ar, 100000));
    eddy__arena_reset(&ar);
    assert_int_equal(ar.ar_bytes, 0);
    assert_non_null(ar.ar_head);
    /* One chunk is left, and it is the big one: 100000 bytes now fit
     * without a new chunk. */
    void *kept = ar.ar_head;
    unsigned char *p = eddy__arena_alloc(&ar, 100000);
    assert_non_null(p);
    assert_ptr_equal(ar.ar_head, kept);
    memset(p, 1, 100000);
    eddy__arena_reset(&ar);
    eddy__arena_close(&ar);
}

static void test_arena_default_chunk_and_dup(void **state)
{
    (void)state;
    eddy__arena_t ar;
    eddy__arena_init(&ar, 0); /* 0 means the default chunk size */
    assert_true(ar.ar_chunk_size > 0);
    char *s = eddy__arena_strdup(&ar, "stream");
    assert_string_equal(s, "stream");
    unsigned char bytes[5] = {0, 1, 2, 0, 255};
    unsigned char *d = eddy__arena_memdup(&ar, bytes, sizeof(bytes));
    assert_memory_equal(d, bytes, sizeof(bytes));
    assert_non_null(eddy__arena_memdup(&ar, NULL, 0));
    char *e = eddy__arena_strdup(&ar, "");
    assert_string_equal(e, "");
    eddy__arena_close(&ar);
    eddy__arena_close(&ar); /* closing twice is harmless */
}

static void test_grow(void **state)
{
    (void)state;
    int *arr = NULL;
    size_t cap = 0;
    eddy__grow((void **)&arr, &cap, 1, sizeof(int));
    assert_int_equal(cap, 8);
    for (int i = 0; i < 8; i++) {
        arr[i] = i;
    }
    eddy__grow((void **)&arr, &cap, 8, sizeof(int)); /* enough already */
    assert_int_equal(cap, 8);
    eddy__grow((void **)&arr, &cap, 9, sizeof(int));
    assert_int_equal(cap, 16);
    eddy__grow((void **)&arr, &cap, 1000, sizeof(int));
    assert_int_equal(cap, 1024);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(arr[i], i);
    }
    arr[999] = 7;
    eddy__free(arr);
}

static void test_fmt_truncates(void **state)
{
    (void)state;
    char buf[8];
    char *r = eddy__fmt(buf, sizeof(buf), "%s-%d", "abcdef", 12345);
    assert_ptr_equal(r, buf);
    assert_string_equal(buf, "abcdef-");
    eddy__fmt(buf, sizeof(buf), "%d", 42);
    assert_string_equal(buf, "42");
}

static void test_free_preserves_errno(void **state)
{
    (void)state;
    void *p = eddy__malloc(16);
    errno = ENOENT;
    eddy__free(p);
    assert_int_equal(errno, ENOENT);
    eddy__free(NULL);
    assert_int_equal(errno, ENOENT);
}

static void test_strdup_and_zero_sizes(void **state)
{
    (void)state;
    char *s = eddy__strdup("hello");
    assert_string_equal(s, "hello");
    eddy__free(s);
    /* Zero-size requests return usable (freeable) pointers. */
    void *a = eddy__malloc(0);
    void *b = eddy__calloc(0, 0);
    void *c = eddy__realloc(NULL, 0);
    void *d = eddy__try_malloc(0);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    assert_non_null(d);
    eddy__free(a);
    eddy__free(b);
    eddy__free(c);
    eddy__free(d);
    unsigned char *z = eddy__calloc(100, 3);
    for (int i = 0; i < 300; i++) {
        assert_int_equal(z[i], 0);
    }
    eddy__free(z);
}

static void test_now_ns_monotonic(void **state)
{
    (void)state;
    uint64_t a = eddy__now_ns();
    uint64_t b = eddy__now_ns();
    assert_true(b >= a);
    assert_true(a > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arena_alignment_and_distinct),
        cmocka_unit_test(test_arena_large_allocation),
        cmocka_unit_test(test_arena_reset_keeps_largest_chunk),
        cmocka_unit_test(test_arena_default_chunk_and_dup),
        cmocka_unit_test(test_grow),
        cmocka_unit_test(test_fmt_truncates),
        cmocka_unit_test(test_free_preserves_errno),
        cmocka_unit_test(test_strdup_and_zero_sizes),
        cmocka_unit_test(test_now_ns_monotonic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
