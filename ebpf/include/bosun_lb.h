/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bosun_lb.h — the ONE definition of the socket load balancer's map keys and values.
 *
 * Shared by the eBPF programs (src/bpf/) and checked against the Rust mirrors
 * (src/layout.rs) by a build-time layout probe (build.rs + tests). Rules:
 *   - every struct is packed by hand: explicit padding fields, no holes, no tail padding;
 *   - byte order is in the name: *_be fields are network byte order, everything else host;
 *   - a layout change means a new map name (BOSUN_LB_MAP_VERSION), so a pinned map from an
 *     older agent is never read with a new layout.
 */
#ifndef BOSUN_LB_H
#define BOSUN_LB_H

#include <linux/types.h>

#define BOSUN_LB_MAP_VERSION 1

/* Service flags (struct bosun_lb4_service.flags). */
#define BOSUN_SVC_F_AFFINITY 0x0001 /* ClientIP affinity, see affinity_timeout_s */
#define BOSUN_SVC_F_MAGLEV   0x0002 /* backend from the Maglev table, not random */

/* Backend flags (struct bosun_lb4_backend.flags). */
#define BOSUN_BE_F_TERMINATING 0x01 /* terminating but serving: used only when none is ready */

/* Maglev table entries per map value. */
#define BOSUN_MAGLEV_CHUNK 64

/* Service table key: what a client connects to. */
struct bosun_lb4_service_key {
	__be32 vip_be;   /* service address */
	__be16 port_be;  /* service port */
	__u8 proto;      /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 pad;
};

/*
 * Service table value. Backends live in two slot generations: userspace writes the
 * inactive generation, then replaces this value (one atomic hash update) to flip `gen`.
 * Slots [0, ready_count) are ready backends; slots [ready_count, ready_count +
 * terminating_count) are terminating-but-serving ones, used only when ready_count == 0.
 */
struct bosun_lb4_service {
	__u32 service_id;          /* index into the counters map; stable for the service's life */
	__u16 ready_count;
	__u16 terminating_count;
	__u16 flags;               /* BOSUN_SVC_F_* */
	__u8 gen;                  /* live slot generation, 0 or 1 */
	__u8 pad;
	__u32 affinity_timeout_s;  /* with BOSUN_SVC_F_AFFINITY */
	__u32 maglev_size;         /* table size M (prime) with BOSUN_SVC_F_MAGLEV */
};

/* Backend slot key: one backend of one service generation. */
struct bosun_lb4_backend_key {
	__u32 service_id;
	__u16 slot;
	__u8 gen;
	__u8 pad;
};

struct bosun_lb4_backend {
	__be32 ip_be;
	__be16 port_be;
	__u8 flags;      /* BOSUN_BE_F_* */
	__u8 pad;
};

/* Maglev table: entries [chunk * CHUNK, chunk * CHUNK + CHUNK) of a service generation. */
struct bosun_lb4_maglev_key {
	__u32 service_id;
	__u16 chunk;
	__u8 gen;
	__u8 pad;
};

struct bosun_lb4_maglev_chunk {
	__u16 slot[BOSUN_MAGLEV_CHUNK]; /* absolute backend slot of each table entry */
};

/*
 * ClientIP affinity (LRU). At socket level the client is its network namespace (a pod),
 * identified by the netns cookie.
 */
struct bosun_lb4_affinity_key {
	__u64 netns_cookie;
	__u32 service_id;
	__u32 pad;
};

struct bosun_lb4_affinity {
	__u64 last_used_ns;  /* bpf_ktime_get_ns() */
	__be32 ip_be;        /* chosen backend */
	__be16 port_be;
	__u16 slot;          /* where it was; checked before reuse */
};

/* Reverse NAT (LRU): (socket, backend) → service address, for recvmsg and getpeername. */
struct bosun_lb4_revnat_key {
	__u64 cookie;        /* bpf_get_socket_cookie() */
	__be32 ip_be;        /* backend */
	__be16 port_be;
	__u16 pad;
};

struct bosun_lb4_revnat {
	__be32 vip_be;
	__be16 port_be;
	__u16 pad;
	__u32 service_id;
};

/* Per-CPU counters, indexed by service id. */
struct bosun_lb4_counters {
	__u64 connections;   /* connect() translated (TCP, connected UDP) */
	__u64 datagrams;     /* unconnected UDP sendmsg() translated */
	__u64 refused;       /* no backend: failed with ECONNREFUSED */
};

#endif /* BOSUN_LB_H */
