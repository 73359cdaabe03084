// SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0
/*
 * sock_lb.c — ClusterIP at socket level: cgroup sock_addr hooks (IPv4).
 *
 * connect4 / sendmsg4 rewrite a service address (VIP, port, proto) into a backend before the
 * kernel routes anything, so no packet ever carries the VIP; recvmsg4 / getpeername4 rewrite
 * the backend back into the VIP for the sockets that were translated. Addresses that are not
 * services (headless, pod IPs, anything else) are left untouched.
 *
 * No usable backend: the syscall fails with ECONNREFUSED at once. The program sets the
 * syscall's return value with bpf_set_retval(-ECONNREFUSED) (kernel >= 5.18) and rejects;
 * a rejecting cgroup program only turns the return value into -EPERM when no error was set.
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <stdbool.h>
#include <bpf/bpf_helpers.h>
#include "bosun_lb.h"
#include "lib/maps.h"
#include "lib/lb.h"

#define SYS_REJECT 0
#define SYS_PROCEED 1
#define ECONNREFUSED 111

static __always_inline int sock4_forward(struct bpf_sock_addr *ctx, bool is_sendmsg)
{
	struct bosun_lb4_service_key key = {
		.vip_be = ctx->user_ip4,
		.port_be = (__be16)ctx->user_port,
	};
	struct bosun_lb4_service *found, svc;
	struct bosun_lb4_counters *cnt;
	struct bosun_lb4_backend *be;
	__u32 proto = ctx->protocol;

	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return SYS_PROCEED;
	key.proto = proto;
	found = bpf_map_lookup_elem(&bosun_svc_v1, &key);
	if (!found)
		return SYS_PROCEED;
	/* One consistent snapshot: userspace replaces the whole value to flip generations. */
	svc = *found;
	cnt = lb4_counters(svc.service_id);
	be = lb4_select(ctx, &svc);
	if (!be) {
		if (cnt)
			cnt->refused++;
		bpf_set_retval(-ECONNREFUSED);
		return SYS_REJECT;
	}
	ctx->user_ip4 = be->ip_be;
	ctx->user_port = (__u32)be->port_be;
	if (cnt) {
		if (is_sendmsg)
			cnt->datagrams++;
		else
			cnt->connections++;
	}
	lb4_remember_revnat(ctx, be, &key, svc.service_id);
	return SYS_PROCEED;
}

static __always_inline int sock4_reverse(struct bpf_sock_addr *ctx)
{
	struct bosun_lb4_revnat_key rkey = {
		.cookie = bpf_get_socket_cookie(ctx),
		.ip_be = ctx->user_ip4,
		.port_be = (__be16)ctx->user_port,
	};
	struct bosun_lb4_revnat *rev = bpf_map_lookup_elem(&bosun_revnat_v1, &rkey);

	if (rev) {
		ctx->user_ip4 = rev->vip_be;
		ctx->user_port = (__u32)rev->port_be;
	}
	return SYS_PROCEED;
}

SEC("cgroup/connect4")
int bosun_connect4(struct bpf_sock_addr *ctx)
{
	return sock4_forward(ctx, false);
}

SEC("cgroup/sendmsg4")
int bosun_sendmsg4(struct bpf_sock_addr *ctx)
{
	return sock4_forward(ctx, true);
}

SEC("cgroup/recvmsg4")
int bosun_recvmsg4(struct bpf_sock_addr *ctx)
{
	return sock4_reverse(ctx);
}

SEC("cgroup/getpeername4")
int bosun_getpeername4(struct bpf_sock_addr *ctx)
{
	return sock4_reverse(ctx);
}

char _license[] SEC("license") = "GPL";
