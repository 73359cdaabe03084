/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lb.h — service lookup and backend selection for the socket load balancer.
 *
 * Reads the maps userspace writes (never writes the service or backend tables): finds the
 * service of a (VIP, port, proto), picks a backend of the live slot generation (ClientIP
 * affinity first, then Maglev or random), and records the reverse translation. Active set:
 * the ready backends, or the terminating-but-serving ones when none is ready.
 */
#ifndef BOSUN_LIB_LB_H
#define BOSUN_LIB_LB_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "bosun_lb.h"
#include "maps.h"
#include "hash.h"

#define NSEC_PER_SEC 1000000000ULL

static __always_inline struct bosun_lb4_counters *lb4_counters(__u32 service_id)
{
	return bpf_map_lookup_elem(&bosun_cnt_v1, &service_id);
}

static __always_inline struct bosun_lb4_backend *
lb4_backend(const struct bosun_lb4_service *svc, __u16 slot)
{
	struct bosun_lb4_backend_key key = {
		.service_id = svc->service_id,
		.slot = slot,
		.gen = svc->gen,
	};

	return bpf_map_lookup_elem(&bosun_be_v1, &key);
}

/* Maglev: hash the client (bound source, or the socket when unbound) into the table. */
static __always_inline int lb4_maglev_slot(struct bpf_sock_addr *ctx,
					   const struct bosun_lb4_service *svc, __u16 *slot)
{
	struct bosun_lb4_maglev_key key = { .service_id = svc->service_id, .gen = svc->gen };
	struct bosun_lb4_maglev_chunk *chunk;
	struct bpf_sock *sk = ctx->sk;
	__u64 netns = bpf_get_netns_cookie(ctx);
	__u32 a = (__u32)netns ^ (__u32)(netns >> 32), b, c, idx;

	if (!svc->maglev_size)
		return -1;
	if (sk && sk->src_port) {
		b = sk->src_ip4;
		c = sk->src_port;
	} else {
		__u64 cookie = bpf_get_socket_cookie(ctx);

		b = (__u32)cookie;
		c = (__u32)(cookie >> 32);
	}
	idx = bosun_hash_3words(a, b, c, ctx->user_ip4 ^ ctx->user_port) % svc->maglev_size;
	key.chunk = idx / BOSUN_MAGLEV_CHUNK;
	chunk = bpf_map_lookup_elem(&bosun_maglev_v1, &key);
	if (!chunk)
		return -1;
	*slot = chunk->slot[idx % BOSUN_MAGLEV_CHUNK];
	return 0;
}

/* ClientIP affinity: reuse the remembered backend if fresh and still at its slot. */
static __always_inline struct bosun_lb4_backend *
lb4_affinity_backend(const struct bosun_lb4_service *svc, struct bosun_lb4_affinity_key *key,
		     __u16 active, __u64 now)
{
	struct bosun_lb4_affinity *aff = bpf_map_lookup_elem(&bosun_aff_v1, key);
	struct bosun_lb4_backend *be;

	if (!aff || aff->slot >= active)
		return NULL;
	if (now - aff->last_used_ns > (__u64)svc->affinity_timeout_s * NSEC_PER_SEC)
		return NULL;
	be = lb4_backend(svc, aff->slot);
	if (!be || be->ip_be != aff->ip_be || be->port_be != aff->port_be)
		return NULL;
	aff->last_used_ns = now;
	return be;
}

/*
 * Picks the backend of the live generation for a connect/sendmsg to `svc` (a snapshot of
 * the service entry). Returns NULL when the service has no usable backend.
 */
static __always_inline struct bosun_lb4_backend *
lb4_select(struct bpf_sock_addr *ctx, const struct bosun_lb4_service *svc)
{
	struct bosun_lb4_affinity_key aff_key = {};
	struct bosun_lb4_backend *be;
	__u16 active = svc->ready_count ? svc->ready_count : svc->terminating_count;
	__u64 now = 0;
	__u16 slot = 0;

	if (!active)
		return NULL;
	if (svc->flags & BOSUN_SVC_F_AFFINITY) {
		now = bpf_ktime_get_ns();
		aff_key.netns_cookie = bpf_get_netns_cookie(ctx);
		aff_key.service_id = svc->service_id;
		be = lb4_affinity_backend(svc, &aff_key, active, now);
		if (be)
			return be;
	}
	if (!(svc->flags & BOSUN_SVC_F_MAGLEV) || lb4_maglev_slot(ctx, svc, &slot) || slot >= active)
		slot = bpf_get_prandom_u32() % active;
	be = lb4_backend(svc, slot);
	if (be && (svc->flags & BOSUN_SVC_F_AFFINITY)) {
		struct bosun_lb4_affinity aff = {
			.last_used_ns = now,
			.ip_be = be->ip_be,
			.port_be = be->port_be,
			.slot = slot,
		};

		bpf_map_update_elem(&bosun_aff_v1, &aff_key, &aff, BPF_ANY);
	}
	return be;
}

static __always_inline void lb4_remember_revnat(struct bpf_sock_addr *ctx,
						const struct bosun_lb4_backend *be,
						const struct bosun_lb4_service_key *key,
						__u32 service_id)
{
	struct bosun_lb4_revnat_key rkey = {
		.cookie = bpf_get_socket_cookie(ctx),
		.ip_be = be->ip_be,
		.port_be = be->port_be,
	};
	struct bosun_lb4_revnat rval = {
		.vip_be = key->vip_be,
		.port_be = key->port_be,
		.service_id = service_id,
	};

	bpf_map_update_elem(&bosun_revnat_v1, &rkey, &rval, BPF_ANY);
}

#endif /* BOSUN_LIB_LB_H */
