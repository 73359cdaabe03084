/* SPDX-License-Identifier: Apache-2.0 */
/*
 * maps.h — every map of the socket load balancer, declared once. Programs never re-declare
 * a map. All maps are pinned by name (LIBBPF_PIN_BY_NAME) under the loader's bpffs dir, so
 * they outlive the agent; max_entries here are defaults the loader overrides (MapSizes).
 * Names carry the layout version of bosun_lb.h.
 */
#ifndef BOSUN_LIB_MAPS_H
#define BOSUN_LIB_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "bosun_lb.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct bosun_lb4_service_key);
	__type(value, struct bosun_lb4_service);
	__uint(max_entries, 65536);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bosun_svc_v1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct bosun_lb4_backend_key);
	__type(value, struct bosun_lb4_backend);
	__uint(max_entries, 262144);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bosun_be_v1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct bosun_lb4_maglev_key);
	__type(value, struct bosun_lb4_maglev_chunk);
	__uint(max_entries, 16384);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bosun_maglev_v1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct bosun_lb4_affinity_key);
	__type(value, struct bosun_lb4_affinity);
	__uint(max_entries, 65536);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bosun_aff_v1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct bosun_lb4_revnat_key);
	__type(value, struct bosun_lb4_revnat);
	__uint(max_entries, 262144);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bosun_revnat_v1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct bosun_lb4_counters);
	__uint(max_entries, 65536);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bosun_cnt_v1 SEC(".maps");

#endif /* BOSUN_LIB_MAPS_H */
