/*
 * crc32c.c - CRC-32C with the SSE4.2 crc32 instruction or a table.
 *
 * The polynomial is 0x1EDC6F41 (reflected 0x82F63B78), the one btrfs, ext4
 * and iSCSI use.  The tables are built once on first use (pthread_once).
 *
 * The crc32 instruction takes 3 cycles and issues one per cycle, so one
 * chain of them runs at a third of the speed the CPU allows.  Long buffers
 * are cut into three runs checksummed side by side, each from zero, and the
 * three results joined: the CRC register after run A is carried over run B
 * by multiplying it by x^(8 |B|) modulo the polynomial (a linear map, four
 * table lookups) and adding B's own CRC.  The method is Mark Adler's
 * crc32c.c (the zlib author's; also Intel's "Fast CRC Computation for iSCSI
 * Polynomial Using CRC32 Instruction", 2011, and Linux's
 * arch/x86/crypto/crc32c-pcl-intel-asm_64.S, which join with PCLMULQDQ).
 */
#include "crc32c.h"

#include <pthread.h>
#include <string.h>

#define POLY 0x82F63B78u

/* Bytes per run: 3 runs of LONG while the buffer has them (a 4 KiB block
 * is 3 of 1,360 bytes and 16 more), then 3 of SHORT. */
#define CRC_LONG 1360
#define CRC_SHORT 256

static uint32_t crc_table[256];
/* crc_shift_*[k][b]: the CRC register holding byte B at byte K carried
 * over LONG (SHORT) zero bytes */
static uint32_t crc_shift_long[4][256], crc_shift_short[4][256];
static int have_hw;
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

/* The register CRC carried over LEN zero bytes, a byte at a time. */
static uint32_t crc_zeros_slow(uint32_t crc, size_t len)
{
    while (len--)
        crc = crc_table[crc & 0xff] ^ (crc >> 8);
    return crc;
}

/* Fills T with the map "carry over LEN zero bytes", by linearity: the
 * image of each of the 32 bits, then every byte value at each of the four
 * byte positions as the sum of its bits' images. */
static void crc_shift_init(uint32_t t[4][256], size_t len)
{
    uint32_t col[32];
    for (int i = 0; i < 32; i++)
        col[i] = crc_zeros_slow(1u << i, len);
    for (int k = 0; k < 4; k++)
        for (unsigned b = 0; b < 256; b++) {
            uint32_t v = 0;
            for (int j = 0; j < 8; j++)
                if (b & (1u << j))
                    v ^= col[8 * k + j];
            t[k][b] = v;
        }
}

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ POLY : c >> 1;
        crc_table[i] = c;
    }
    crc_shift_init(crc_shift_long, CRC_LONG);
    crc_shift_init(crc_shift_short, CRC_SHORT);
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    have_hw = __builtin_cpu_supports("sse4.2") != 0;
#endif
}

static uint32_t crc_sw(uint32_t crc, const uint8_t *p, size_t len)
{
    while (len--)
        crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return crc;
}

#if defined(__x86_64__)
/* The register CRC carried over the zero bytes T was built for. */
static inline uint32_t crc_shift(uint32_t t[4][256], uint32_t crc)
{
    return t[0][crc & 0xff] ^ t[1][(crc >> 8) & 0xff] ^ t[2][(crc >> 16) & 0xff] ^
           t[3][crc >> 24];
}

/* Three runs of N bytes (a multiple of 8) at P, side by side, joined into
 * the register CRC.  Returns the register after all 3 N bytes. */
__attribute__((target("sse4.2"))) static inline uint64_t
crc_hw3(uint64_t crc, const uint8_t *p, size_t n, uint32_t t[4][256])
{
    uint64_t c1 = 0, c2 = 0;
    for (const uint8_t *end = p + n; p < end; p += 8) {
        uint64_t a, b, c;
        memcpy(&a, p, 8);
        memcpy(&b, p + n, 8);
        memcpy(&c, p + 2 * n, 8);
        crc = __builtin_ia32_crc32di(crc, a);
        c1 = __builtin_ia32_crc32di(c1, b);
        c2 = __builtin_ia32_crc32di(c2, c);
    }
    crc = crc_shift(t, (uint32_t)crc) ^ (uint32_t)c1;
    return crc_shift(t, (uint32_t)crc) ^ (uint32_t)c2;
}

__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t crc, const uint8_t *p,
                                                         size_t len)
{
    uint64_t c = crc;
    for (; len >= 3 * CRC_LONG; p += 3 * CRC_LONG, len -= 3 * CRC_LONG)
        c = crc_hw3(c, p, CRC_LONG, crc_shift_long);
    for (; len >= 3 * CRC_SHORT; p += 3 * CRC_SHORT, len -= 3 * CRC_SHORT)
        c = crc_hw3(c, p, CRC_SHORT, crc_shift_short);
    while (len >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
        p += 8;
        len -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (len--)
        c32 = __builtin_ia32_crc32qi(c32, *p++);
    return c32;
}
#endif

uint32_t crc32c(uint32_t crc, const void *buf, size_t len)
{
    pthread_once(&crc_once, crc_init);
    crc = ~crc;
#if defined(__x86_64__)
    if (have_hw)
        return ~crc_hw(crc, buf, len);
#endif
    return ~crc_sw(crc, buf, len);
}

uint32_t crc32c_table(uint32_t crc, const void *buf, size_t len)
{
    pthread_once(&crc_once, crc_init);
    return ~crc_sw(~crc, buf, len);
}

int crc32c_hw(void)
{
    pthread_once(&crc_once, crc_init);
    return have_hw;
}
