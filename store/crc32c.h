/*
 * crc32c.h - CRC-32C (Castagnoli), as used by every checksum in a container.
 *
 * Uses the CPU's crc32 instruction (SSE4.2) when present, three streams side
 * by side on long buffers, a table otherwise; both give the same result.
 * Thread-safe; no state.
 */
#ifndef COW_CRC32C_H
#define COW_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/*
 * Extends CRC (start with 0) over LEN bytes at P and returns the new value.
 * The result is the standard CRC-32C: crc32c(0, "123456789", 9) == 0xe3069283.
 */
uint32_t crc32c(uint32_t crc, const void *p, size_t len);

/*
 * crc32c computed with the table alone, a byte at a time, whatever the CPU:
 * the reference the hardware path is tested against (test/check_util.c).
 * Same arguments and result as crc32c.
 */
uint32_t crc32c_table(uint32_t crc, const void *p, size_t len);

/* 1 if the hardware instruction is used, 0 if the table is. */
int crc32c_hw(void);

#endif
