/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hash.h — Bob Jenkins' lookup3 final mix over three words (the kernel's jhash_3words), used
 * to index the Maglev table. Only the kernel hashes flows; userspace fills the table by
 * index, so there is no userspace twin to keep in step.
 */
#ifndef BOSUN_LIB_HASH_H
#define BOSUN_LIB_HASH_H

#include <linux/types.h>

static __always_inline __u32 bosun_rol32(__u32 word, unsigned int shift)
{
	return (word << shift) | (word >> ((-shift) & 31));
}

static __always_inline __u32 bosun_hash_3words(__u32 a, __u32 b, __u32 c, __u32 seed)
{
	__u32 init = 0xdeadbeef + (3 << 2) + seed;

	a += init;
	b += init;
	c += init;
	c ^= b; c -= bosun_rol32(b, 14);
	a ^= c; a -= bosun_rol32(c, 11);
	b ^= a; b -= bosun_rol32(a, 25);
	c ^= b; c -= bosun_rol32(b, 16);
	a ^= c; a -= bosun_rol32(c, 4);
	b ^= a; b -= bosun_rol32(a, 14);
	c ^= b; c -= bosun_rol32(b, 24);
	return c;
}

#endif /* BOSUN_LIB_HASH_H */
