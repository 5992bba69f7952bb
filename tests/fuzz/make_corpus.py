#!/usr/bin/env python3
"""Writes the seed corpora of the structured fuzzers: small valid inputs in the
layouts their headers describe (tests/fuzz/fuzz_<name>.c).

    python3 tests/fuzz/make_corpus.py [NAME...]

writes tests/fuzz/corpus/<name>/seed_* for the named fuzzers (default: all
the generated ones), replacing the old seed_* files. Other files there (the
crashers and merged inputs a person committed) are left alone. The output is
deterministic, so re-running it changes nothing unless this script changed.
"""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TNAME = b"iqn.2024-01.org.example:fuzz"
INAME = b"iqn.1993-08.org.debian:01:fuzz"

OP_NOP_OUT, OP_SCSI_CMD, OP_TMF, OP_LOGIN, OP_TEXT, OP_DATA_OUT, OP_LOGOUT = 0, 1, 2, 3, 4, 5, 6
OP_SNACK = 0x10


def text(*kv):
    return b"".join(k + b"\0" for k in kv)


def bhs(op, flags=0, itt=1, ttt=0xFFFFFFFF, cmdsn=0, expstatsn=0, lun=0, dsl=0, ahs_words=0,
        b20=None, cdb=b"", b36=0, b40=0, b44=0, b2=0, b3=0):
    """A 48-byte BHS. b20 overrides bytes 20..23 (EDTL, TTT, RefTaskTag)."""
    h = bytearray(48)
    h[0] = op
    h[1] = flags
    h[2] = b2
    h[3] = b3
    h[4] = ahs_words
    h[5:8] = struct.pack(">I", dsl)[1:]
    h[8:16] = struct.pack(">Q", lun)
    h[16:20] = struct.pack(">I", itt)
    h[20:24] = struct.pack(">I", ttt if b20 is None else b20)
    h[24:28] = struct.pack(">I", cmdsn)
    h[28:32] = struct.pack(">I", expstatsn)
    if cdb:
        h[32:32 + len(cdb)] = cdb
    else:
        h[36:40] = struct.pack(">I", b36)
        h[40:44] = struct.pack(">I", b40)
        h[44:48] = struct.pack(">I", b44)
    return bytes(h)


def cdb10(op, lba, blocks, b1=0):
    return struct.pack(">BBIBHB", op, b1, lba, 0, blocks, 0)


# ---------------------------------------------------------------- fuzz_ffp

def ffp_rec(ctl, h, data=b"", ahs=b""):
    return struct.pack(">BBH", ctl, len(ahs) // 4, len(data)) + h + ahs + data


STAMP, DOUT, COMPLETE, FAIL, POLL, EXPSTAT, XFER_ONLY = 1, 2, 4, 8, 0x10, 0x20, 0x40


def ffp_seeds():
    s = {}
    std = STAMP | EXPSTAT | POLL
    read = ffp_rec(std | COMPLETE, bhs(OP_SCSI_CMD, 0xC1, itt=2, b20=4096, cdb=cdb10(0x28, 0, 8)))
    wr_data = bytes(range(256)) * 16
    s["read10"] = b"\x00" + read
    # WRITE with immediate data, then unsolicited Data-Out for the rest
    s["write_immediate"] = b"\x01" + ffp_rec(
        std | COMPLETE, bhs(OP_SCSI_CMD, 0x21, itt=3, b20=4096, cdb=cdb10(0x2A, 8, 8)),
        wr_data[:1024]) + ffp_rec(DOUT | EXPSTAT | POLL | COMPLETE,
                                  bhs(OP_DATA_OUT, 0x80, itt=3), wr_data[1024:4096])
    # WRITE, InitialR2T=Yes: everything solicited through get_data
    s["write_solicited"] = b"\x02" + ffp_rec(
        std | COMPLETE | XFER_ONLY,
        bhs(OP_SCSI_CMD, 0xA1, itt=4, b20=4096, cdb=cdb10(0x2A, 16, 8)), wr_data)
    s["write_imm_then_solicited"] = b"\x03" + ffp_rec(
        std | COMPLETE, bhs(OP_SCSI_CMD, 0xA1, itt=3, b20=4096, cdb=cdb10(0x2A, 8, 8)),
        wr_data[:1024])
    s["write_fail"] = b"\x02" + ffp_rec(
        std | FAIL, bhs(OP_SCSI_CMD, 0xA1, itt=4, b20=2048, cdb=cdb10(0x2A, 16, 4)))
    # extended CDB AHS (type 1) with a 32-byte CDB
    ext = struct.pack(">HB", 17, 1) + b"\0" + bytes(16)
    s["ext_cdb"] = b"\x00" + ffp_rec(std, bhs(OP_SCSI_CMD, 0x81, itt=5, cdb=bytes([0x7F]) + bytes(15)),
                                     ahs=ext)
    s["nop_ping"] = b"\x00" + ffp_rec(std, bhs(OP_NOP_OUT, 0x80, itt=6), b"ping" * 8)
    s["nop_immediate"] = b"\x00" + ffp_rec(std, bhs(OP_NOP_OUT | 0x40, 0x80, itt=6))
    s["text_sendtargets"] = b"\x00" + ffp_rec(std, bhs(OP_TEXT, 0x80, itt=7),
                                              text(b"SendTargets=All"))
    s["text_continue"] = b"\x00" + ffp_rec(std, bhs(OP_TEXT, 0x40, itt=7), b"SendTarg") + \
        ffp_rec(std, bhs(OP_TEXT, 0x80, itt=7), b"ets=All\0")
    s["discovery_text"] = b"\x04" + ffp_rec(std, bhs(OP_TEXT, 0x80, itt=7),
                                            text(b"SendTargets=All"))
    s["text_keys"] = b"\x00" + ffp_rec(std, bhs(OP_TEXT, 0x80, itt=7),
                                       text(b"MaxRecvDataSegmentLength=4096", b"X-foo=bar"))
    # TMF: ABORT TASK of a pending write, LUN RESET, TARGET WARM RESET
    s["tmf_abort"] = b"\x02" + ffp_rec(
        std, bhs(OP_SCSI_CMD, 0xA1, itt=8, b20=4096, cdb=cdb10(0x2A, 0, 8))) + ffp_rec(
        std, bhs(OP_TMF | 0x40, 0x81, itt=9, b20=8)) + ffp_rec(COMPLETE | POLL, bhs(OP_NOP_OUT))
    s["tmf_lun_reset"] = b"\x00" + ffp_rec(std, bhs(OP_TMF | 0x40, 0x85, itt=9))
    s["tmf_warm_reset"] = b"\x00" + ffp_rec(std, bhs(OP_TMF | 0x40, 0x86, itt=9))
    s["logout"] = b"\x00" + ffp_rec(std, bhs(OP_LOGOUT | 0x40, 0x80, itt=10))
    s["logout_after_read"] = s["read10"] + ffp_rec(std, bhs(OP_LOGOUT, 0x80, itt=10))
    s["snack"] = b"\x00" + ffp_rec(std, bhs(OP_SNACK, 0x80, itt=11))
    s["unknown_opcode"] = b"\x00" + ffp_rec(std, bhs(0x1C, 0x80, itt=12))
    s["cmdsn_gap"] = b"\x00" + ffp_rec(EXPSTAT, bhs(OP_SCSI_CMD, 0x81, itt=13, cmdsn=5)) + \
        ffp_rec(std, bhs(OP_SCSI_CMD, 0x81, itt=14))
    return s


# ---------------------------------------------------------------- fuzz_login

def login_rec(flags, ctl, txt, raw=None):
    return struct.pack(">BBH", flags, ctl, len(txt)) + (raw or b"") + txt


OP_TO_FFP = 0x80 | (1 << 2) | 3
SEC_TO_OP = 0x80 | (0 << 2) | 1
SEC_TO_FFP = 0x80 | (0 << 2) | 3
SEC_STAY = 0
STD, CHAP_ANS, RECONNECT, NAMES, TSIH = 0, 2, 4, 8, 0x10


def login_seeds():
    s = {}
    ops = text(b"HeaderDigest=None", b"DataDigest=CRC32C,None", b"MaxRecvDataSegmentLength=65536",
               b"ImmediateData=Yes", b"InitialR2T=No", b"ErrorRecoveryLevel=0")
    s["none_one_pdu"] = b"\x00" + login_rec(OP_TO_FFP, NAMES, ops)
    s["none_two_stages"] = b"\x00" + login_rec(SEC_TO_OP, NAMES, text(b"AuthMethod=None")) + \
        login_rec(OP_TO_FFP, STD, ops)
    s["discovery"] = b"\x00" + login_rec(OP_TO_FFP, STD, text(
        b"InitiatorName=" + INAME, b"SessionType=Discovery"))
    s["acl_denied"] = b"\x04" + login_rec(OP_TO_FFP, STD, text(
        b"InitiatorName=iqn.2000-01.com.other:x", b"TargetName=" + TNAME))
    s["no_target"] = b"\x00" + login_rec(OP_TO_FFP, STD, text(
        b"InitiatorName=" + INAME, b"TargetName=iqn.2000-01.com.none:x"))
    chap_begin = login_rec(SEC_STAY, NAMES, text(b"AuthMethod=CHAP,None")) + \
        login_rec(SEC_STAY, STD, text(b"CHAP_A=5"))
    s["chap_ok"] = b"\x01" + chap_begin + login_rec(SEC_TO_OP, CHAP_ANS, b"") + \
        login_rec(OP_TO_FFP, STD, ops)
    s["chap_a_list"] = b"\x01" + login_rec(SEC_STAY, NAMES, text(b"AuthMethod=CHAP")) + \
        login_rec(SEC_STAY, STD, text(b"CHAP_A=7,6,5")) + login_rec(SEC_TO_FFP, CHAP_ANS, b"")
    s["chap_wrong"] = b"\x01" + chap_begin + login_rec(SEC_TO_OP, STD, text(
        b"CHAP_N=alice", b"CHAP_R=0x00112233445566778899aabbccddeeff"))
    s["chap_base64"] = b"\x01" + chap_begin + login_rec(SEC_TO_OP, STD, text(
        b"CHAP_N=alice", b"CHAP_R=0bABEiM0RVZneImaq7zN3u/w=="))
    s["chap_mutual"] = b"\x02" + chap_begin + login_rec(SEC_TO_OP, CHAP_ANS, text(
        b"CHAP_I=9", b"CHAP_C=0x30313233343536373839616263646566")) + \
        login_rec(OP_TO_FFP, STD, ops)
    s["chap_mutual_same_challenge"] = b"\x02" + chap_begin + login_rec(SEC_TO_OP, CHAP_ANS, text(
        b"CHAP_I=9", b"CHAP_C=0x00000000000000000000000000000000"))
    s["chap_discovery_mutual"] = b"\x03" + login_rec(SEC_STAY, STD, text(
        b"InitiatorName=" + INAME, b"SessionType=Discovery", b"AuthMethod=CHAP")) + \
        login_rec(SEC_STAY, STD, text(b"CHAP_A=5")) + login_rec(SEC_TO_FFP, CHAP_ANS, b"")
    s["chap_skip"] = b"\x01" + login_rec(OP_TO_FFP, NAMES, ops)
    s["chap_skip_discovery"] = b"\x01" + login_rec(OP_TO_FFP, STD, text(
        b"InitiatorName=" + INAME, b"SessionType=Discovery", b"AuthMethod=None"))
    s["chap_discovery_only"] = b"\x03" + login_rec(OP_TO_FFP, NAMES, ops)
    s["reinstate"] = s["none_one_pdu"] + login_rec(OP_TO_FFP, RECONNECT | NAMES, ops) + \
        login_rec(OP_TO_FFP, RECONNECT | NAMES | TSIH, ops)
    # a Login Request split over two PDUs with C=1
    s["continue"] = b"\x00" + login_rec(OP_TO_FFP | 0x40, NAMES, b"HeaderDigest=No") + \
        login_rec(OP_TO_FFP, STD, b"ne\0" + ops)
    raw = bhs(OP_LOGIN | 0x40, OP_TO_FFP, itt=0x77, b2=0, b3=0)
    raw = raw[:8] + bytes([0x80, 0x12, 0x34, 0x56, 0, 1]) + raw[14:]
    s["raw_bhs"] = b"\x00" + login_rec(0, 1 | NAMES, ops, raw)
    s["not_login"] = b"\x00" + login_rec(0, 1, b"", bhs(OP_SCSI_CMD, 0x81))
    return s


# ---------------------------------------------------------------- fuzz_scsi_params

def sp_rec(kind, b1, flags, data, cdb_len=None):
    r = struct.pack(">BBBH", kind, b1, flags, len(data))
    if cdb_len is not None:
        r += struct.pack(">H", cdb_len)
    return r + data


def pr_out(key, sa_key, flags=0, extra=b""):
    return struct.pack(">QQIBBH", key, sa_key, 0, flags, 0, 0) + extra


def iscsi_tid(name, isid=None):
    """An iSCSI TransportID (SPC-5 7.6.4.6), padded to a multiple of 4."""
    if isid is None:
        body = name + b"\0"
        fmt = 0x05
    else:
        body = name + b",i,0x" + isid + b"\0"
        fmt = 0x45
    body += b"\0" * (-len(body) % 4)
    return struct.pack(">BBH", fmt, 0, len(body)) + body


def unmap_list(descs):
    d = b"".join(struct.pack(">QII", lba, n, 0) for lba, n in descs)
    return struct.pack(">HHI", 6 + len(d), len(d), 0) + d


def scsi_params_seeds():
    s = {}
    reg = lambda nx, key: sp_rec(1, 0, nx, pr_out(0, key))
    s["unmap_one"] = sp_rec(0, 0, 0, unmap_list([(0, 8)]))
    s["unmap_many"] = sp_rec(0, 0, 0, unmap_list([(i * 16, 8) for i in range(16)]))
    s["unmap_edge"] = sp_rec(0, 0, 0, unmap_list([(511, 1), (0, 0), (510, 4)]))
    s["unmap_short_len"] = sp_rec(0, 0, 4, unmap_list([(0, 8)]), cdb_len=12)
    # PR: register, reserve (WRITE EXCLUSIVE), read back, release, clear
    s["pr_register_reserve"] = reg(0, 0x1111) + sp_rec(1, 1, 0x10, pr_out(0x1111, 0)) + \
        sp_rec(4, 0, 0, b"") + sp_rec(4, 1, 0, b"") + sp_rec(4, 3, 0, b"") + \
        sp_rec(1, 2, 0x10, pr_out(0x1111, 0)) + sp_rec(1, 3, 0, pr_out(0x1111, 0))
    s["pr_preempt"] = reg(0, 0x1111) + reg(1, 0x2222) + sp_rec(1, 1, 0x30, pr_out(0x1111, 0)) + \
        sp_rec(1, 4, 0x31, pr_out(0x2222, 0x1111)) + sp_rec(1, 5, 0x31, pr_out(0x2222, 0x2222))
    s["pr_register_ignore"] = sp_rec(1, 6, 2, pr_out(0, 0x3333, 0x01))
    s["pr_all_tg_pt"] = sp_rec(1, 0, 0, pr_out(0, 0x4444, 0x04)) + sp_rec(4, 2, 0, b"")
    tids = iscsi_tid(b"iqn.2024-01.fuzz:i1", b"00023d000001") + iscsi_tid(b"iqn.2024-01.fuzz:i2")
    s["pr_spec_i_pt"] = sp_rec(1, 0, 0, pr_out(0, 0x5555, 0x08, struct.pack(">I", len(tids)) + tids))
    tid = iscsi_tid(b"iqn.2024-01.fuzz:i2", b"00023d000002")
    move = struct.pack(">QQBBHI", 0x6666, 0x7777, 0, 0, 2, len(tid)) + tid
    s["pr_register_and_move"] = reg(0, 0x6666) + sp_rec(1, 1, 0x10, pr_out(0x6666, 0)) + \
        sp_rec(1, 7, 0x10, move)
    s["pr_bad_len"] = sp_rec(1, 0, 4, pr_out(0, 0x1), cdb_len=23)
    # MODE SELECT: caching page (WCE off), control page, with and without block descriptor
    caching = bytes([0x08, 0x12, 0x00]) + bytes(17)
    control = bytes([0x0A, 0x0A, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0x00, 0x1E])
    s["mode_select6_caching"] = sp_rec(2, 0x10, 0, bytes(4) + caching)
    s["mode_select6_bd"] = sp_rec(2, 0x10, 0, bytes([0, 0, 0, 8]) + struct.pack(">II", 0, 512) +
                                  control)
    s["mode_select10_pages"] = sp_rec(3, 0x10, 0, bytes(8) + caching + control)
    s["mode_select10_longlba"] = sp_rec(3, 0x10, 0, bytes([0, 0, 0, 0, 1, 0, 0, 16]) +
                                        struct.pack(">QII", 0, 0, 512) + control)
    s["mode_select_then_sense"] = sp_rec(3, 0x11, 0, bytes(8) + caching) + sp_rec(5, 0x3F, 0, b"")
    s["mode_select_no_pf"] = sp_rec(2, 0x00, 0, bytes(4) + caching)
    s["raw_write_same_unmap"] = sp_rec(6, 0, 0, bytes([0x93, 0x08]) + bytes(8) +
                                       struct.pack(">I", 8) + bytes(2) + bytes(512))
    s["lu_reset"] = reg(0, 0x1111) + sp_rec(7, 0, 0, b"") + sp_rec(4, 0, 0, b"")
    # EXTENDED COPY (LID1) lists naming the fuzz LU by its NAA designator, and
    # RECEIVE COPY RESULTS after them
    n = naa_fuzz_lu()
    # (a TEST UNIT READY first takes the power-on unit attention)
    xc = lambda plist: sp_rec(6, 0, 0, bytes(16)) + \
        sp_rec(6, 0, 0, bytes([0x83]) + bytes(9) + struct.pack(">I", len(plist)) + bytes(2) +
               plist)
    rcr = lambda sa, lid: sp_rec(6, 0, 0, bytes([0x84, sa, lid]) + bytes(7) +
                                 struct.pack(">I", 96) + bytes(2))
    s["xcopy_within_lu"] = xc(xcopy_list(1, 0, [n], [(0, 0, 8, 0, 64)])) + rcr(0, 1) + \
        rcr(3, 0) + rcr(4, 1)
    s["xcopy_failed_segment"] = xc(xcopy_list(2, 0, [n, n], [(0, 1, 8, 0, 8), (0, 2, 8, 0, 8),
                                                         (0, 0, 16, 500, 0)])) + rcr(4, 2)
    s["xcopy_too_many_targets"] = xc(xcopy_list(3, 0, [n] * 9, [(0, 0, 1, 0, 1)]))
    s["xcopy_zero_length"] = xc(b"")
    bad = bytearray(xcopy_list(0, 3 << 3, [n], [(0, 0, 1, 0, 1)]))
    bad[16 + 32] = 0x03                 # stream to stream
    s["xcopy_bad_segment_type"] = xc(bytes(bad))
    return s


def fnv1a(data, h):
    for c in data:
        h = ((h ^ c) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def naa_fuzz_lu():
    """VPD 83h's NAA designator of fuzz_core.h's LU 0 (no naa_id configured: derived
    from its serial and the device name as src/scsi/dev.c does)."""
    h = fnv1a(b"fuzz0", fnv1a(b"iqn.2024-01.org.example:fuzz", 0xcbf29ce484222325))
    return struct.pack(">QQ", (6 << 60) | (h & 0x0FFFFFFFFFFFFFFF), 0)


def xcopy_list(list_id, flags, naas, segs):
    tg = b"".join(bytes([0xE4, 0, 0, 0, 0x01, 0x03, 0, 16]) + d + bytes(5) +
                  (512).to_bytes(3, "big") for d in naas)
    sg = b"".join(struct.pack(">BBHHHHHQQ", 0x02, 0, 24, a, b, 0, nb, sl, dl)
                  for a, b, nb, sl, dl in segs)
    return struct.pack(">BBHIII", list_id, flags, len(tg), 0, len(sg), 0) + tg + sg


# ---------------------------------------------------------------- fuzz_init_rx

def tpdu(op, flags, itt, data=b"", ttt=0xFFFFFFFF, statsn=1, expcmdsn=1, maxcmdsn=64, w36=0,
         w40=0, w44=0, b2=0, b3=0, lun=0):
    """A target PDU on the wire (no digests): BHS, data, padding."""
    h = struct.pack(">BBBBB", op, flags, b2, b3, 0) + struct.pack(">I", len(data))[1:] + \
        struct.pack(">QIIIIIIII", lun, itt, ttt, statsn, expcmdsn, maxcmdsn, w36, w40, w44)
    return h + data + b"\0" * (-len(data) % 4)


OP_NOP_IN, OP_SCSI_RSP, OP_TMF_RSP, OP_LOGIN_RSP, OP_TEXT_RSP = 0x20, 0x21, 0x22, 0x23, 0x24
OP_DATA_IN, OP_LOGOUT_RSP, OP_R2T, OP_ASYNC, OP_REJECT = 0x25, 0x26, 0x31, 0x32, 0x3F
TASK = [0x10000 + i for i in range(6)]  # slot i's ITT: generation 1, index i


def sense_fixed(key, asc, ascq, info=0):
    return bytes([0xF0, 0, key]) + struct.pack(">I", info) + bytes([10, 0, 0, 0, 0, asc, ascq,
                                                                     0, 0, 0, 0])


def sense_desc(key, asc, ascq, descs=b""):
    return bytes([0x72, key, asc, ascq, 0, 0, 0, len(descs)]) + descs


def init_rx_seeds():
    s = {}
    data = bytes(range(256)) * 32
    good = lambda itt, sn: tpdu(OP_SCSI_RSP, 0x80, itt, statsn=sn)
    s["ffp_data_in_collapsed"] = b"\x00\x00\x10" + tpdu(OP_DATA_IN, 0x81, TASK[1], data, statsn=1)
    s["ffp_data_in_split"] = b"\x00\x00\x04" + tpdu(OP_DATA_IN, 0x00, TASK[3], data[:4096]) + \
        tpdu(OP_DATA_IN, 0x80, TASK[3], data[4096:], w36=1, w40=4096) + good(TASK[3], 1)
    s["ffp_r2t_then_good"] = b"\x00\x00\x40" + tpdu(OP_R2T, 0x80, TASK[0], ttt=5, w40=0,
                                                     w44=8192) + good(TASK[0], 1)
    s["ffp_r2t_two"] = b"\x18\x00\x40" + tpdu(OP_R2T, 0x80, TASK[2], ttt=6, w44=4096) + \
        tpdu(OP_R2T, 0x80, TASK[2], ttt=7, w36=1, w40=4096, w44=4096)
    s["ffp_check_condition_fixed"] = b"\x00\x00\x40" + tpdu(
        OP_SCSI_RSP, 0x80, TASK[1], struct.pack(">H", 18) + sense_fixed(5, 0x21, 0), b3=2)
    s["ffp_check_condition_desc"] = b"\x00\x00\x40" + tpdu(
        OP_SCSI_RSP, 0x80, TASK[0], struct.pack(">H", 20) + sense_desc(
            3, 0x11, 0, bytes([0, 10, 0x80, 0]) + struct.pack(">Q", 1234)), b3=2)
    s["ffp_residual"] = b"\x00\x00\x40" + tpdu(OP_DATA_IN, 0x83, TASK[5], data[:512],
                                                w44=8192 - 512, statsn=1)
    s["ffp_nop_ping"] = b"\x00\x00\x40" + tpdu(OP_NOP_IN, 0x80, 0xFFFFFFFF, ttt=0x1234)
    s["ffp_nop_answer"] = b"\x00\x02\x40" + tpdu(OP_NOP_IN, 0x80, 0x80000000) + \
        tpdu(OP_NOP_IN, 0x80, 0x80000001)
    s["ffp_discovery"] = b"\x00\x01\x40" + tpdu(OP_TEXT_RSP, 0x80, 0x80000000, text(
        b"TargetName=iqn.2026-11.org.test:t", b"TargetAddress=127.0.0.1:3260,1",
        b"TargetAddress=[::1]:3261,2", b"TargetName=iqn.2026-11.org.test:u"))
    s["ffp_discovery_continued"] = b"\x00\x01\x40" + tpdu(
        OP_TEXT_RSP, 0x40, 0x80000000, b"TargetName=iqn.2026", ttt=9) + tpdu(
        OP_TEXT_RSP, 0x80, 0x80000000, b"-11.org.test:t\0TargetAddress=10.0.0.1,1\0")
    s["ffp_tmf"] = b"\x00\x0c\x40" + tpdu(OP_TMF_RSP, 0x80, 0x80000000) + \
        tpdu(OP_TMF_RSP, 0x80, 0x80000001, b2=1)
    s["ffp_async_logout"] = b"\x00\x00\x40" + tpdu(OP_ASYNC, 0x80, 0xFFFFFFFF,
                                                    w36=(1 << 24) | 2, w40=0x00020000)
    s["ffp_async_sense"] = b"\x00\x00\x40" + tpdu(
        OP_ASYNC, 0x80, 0xFFFFFFFF, struct.pack(">H", 18) + sense_fixed(6, 0x29, 0))
    s["ffp_reject"] = b"\x00\x00\x40" + tpdu(OP_REJECT, 0x80, 0xFFFFFFFF,
                                              struct.pack(">BBHI", 1, 0x80, 0, 0) + bytes(40),
                                              b2=4)
    s["ffp_logout_rsp"] = b"\x00\x00\x40" + tpdu(OP_LOGOUT_RSP, 0x80, 0x80000000)
    # login mode: operational stage to FFP, CHAP challenge, mutual answer, redirect
    s["login_op_to_ffp"] = b"\x01\x03\x40" + tpdu(OP_LOGIN_RSP, 0x87, 0x80000001, text(
        b"HeaderDigest=None", b"DataDigest=None", b"MaxRecvDataSegmentLength=65536",
        b"ImmediateData=Yes", b"InitialR2T=No", b"MaxBurstLength=262144",
        b"FirstBurstLength=65536", b"TargetPortalGroupTag=1"), statsn=0) + \
        tpdu(OP_NOP_IN, 0x80, 0xFFFFFFFF, ttt=1)
    s["login_security"] = b"\x01\x00\x40" + tpdu(OP_LOGIN_RSP, 0x81, 0x80000001, text(
        b"AuthMethod=None", b"TargetPortalGroupTag=1", b"TargetAlias=fuzz"), statsn=0)
    s["login_chap_challenge"] = b"\x41\x01\x40" + tpdu(OP_LOGIN_RSP, 0x00, 0x80000001, text(
        b"CHAP_A=5", b"CHAP_I=7", b"CHAP_C=0x00112233445566778899aabbccddeeff"), statsn=0)
    s["login_chap_challenge_b64"] = b"\x41\x01\x40" + tpdu(OP_LOGIN_RSP, 0x00, 0x80000001, text(
        b"CHAP_A=7", b"CHAP_I=255", b"CHAP_C=0bAAECAwQFBgcICQoLDA0ODw=="), statsn=0)
    s["login_mutual_answer"] = b"\xc1\x02\x40" + tpdu(OP_LOGIN_RSP, 0x81, 0x80000001, text(
        b"CHAP_N=tgt", b"CHAP_R=0x00112233445566778899aabbccddeeff"), statsn=0)
    s["login_redirect"] = b"\x01\x00\x40" + tpdu(OP_LOGIN_RSP, 0x00, 0x80000001, text(
        b"TargetAddress=192.0.2.7:3260,1"), statsn=0, w36=0x01010000)
    s["login_continued"] = b"\x01\x03\x40" + tpdu(OP_LOGIN_RSP, 0x40 | 0x04, 0x80000001,
                                                   b"HeaderDigest=No", statsn=0) + \
        tpdu(OP_LOGIN_RSP, 0x87, 0x80000001, b"ne\0DataDigest=None\0", statsn=0)
    s["login_failed"] = b"\x01\x00\x40" + tpdu(OP_LOGIN_RSP, 0x00, 0x80000001, statsn=0,
                                                w36=0x02010000)
    # sense decoder
    s["sense_fixed"] = b"\x02\x00\x00" + sense_fixed(5, 0x24, 0, 0x1234)
    s["sense_fixed_sks"] = b"\x02\x00\x00" + bytes([0x70, 0, 5, 0, 0, 0, 0, 10, 0, 0, 0, 0,
                                                     0x24, 0, 0, 0xC0, 0, 2])
    s["sense_fixed_short"] = b"\x02\x00\x00" + bytes([0x71, 0, 3, 0, 0, 0, 0, 0])
    s["sense_desc_info"] = b"\x02\x00\x00" + sense_desc(
        3, 0x11, 0, bytes([0, 10, 0x80, 0]) + struct.pack(">Q", 99))
    s["sense_desc_many"] = b"\x02\x00\x00" + sense_desc(
        5, 0x24, 0, bytes([2, 6, 0, 0, 0xC0, 0, 2, 0]) + bytes([1, 10, 0, 0]) +
        struct.pack(">Q", 7) + bytes([5, 2, 0, 0]))
    s["sense_desc_overrun"] = b"\x02\x00\x00" + bytes([0x73, 6, 0x29, 0, 0, 0, 0, 200, 0, 250])
    # URL parser
    for name, u in (("url_tcp", b"iscsi://127.0.0.1/iqn.2026-11.org.test:t/0"),
                    ("url_iser_v6", b"iser://[fe80::1%eth0]:3261/iqn.2026-11.org.test:t/3"),
                    ("url_chap", b"iscsi://user%25x:pa%40ss@host:3260/iqn.a:b/1?target_user=t&"
                                 b"target_password=s&header_digest=crc32c&data_digest=none"),
                    ("url_portal", b"iscsi://10.0.0.1:3260"),
                    ("url_bad", b"iscsi://[::1/x/99999999999999999999")):
        s[name] = b"\x03\x00\x00" + u
    return s


# ---------------------------------------------------------------- fuzz_iser_rx

def iser_hdr(op=0x1, wstag=None, wva=0, rstag=None, rva=0):
    flags = op << 4
    if wstag is not None:
        flags |= 0x08
    if rstag is not None:
        flags |= 0x04
    return struct.pack(">B3xIQIQ", flags, wstag or 0, wva, rstag or 0, rva)


def iser_prm(b0=0, mrdsl=262144, trdsl=262144, depth=16, devmax=16, sge=4, limit=0x20000100):
    return struct.pack(">BIIBBBI", b0, mrdsl, trdsl, depth, devmax, sge, limit)


def iser_rx_seeds():
    s = {}
    login = text(b"InitiatorName=" + INAME, b"TargetName=" + TNAME, b"RDMAExtensions=Yes",
                 b"InitiatorRecvDataSegmentLength=8192", b"TargetRecvDataSegmentLength=8192")
    s["login_req"] = iser_prm(2) + iser_hdr() + bhs(OP_LOGIN | 0x40, OP_TO_FFP, itt=1,
                                                   dsl=len(login)) + login
    s["read_cmd"] = iser_prm(2 | 4 | 8) + iser_hdr(rstag=0x1234, rva=0x7F0000001000) + bhs(
        OP_SCSI_CMD, 0xC1, itt=2, b20=4096, cdb=cdb10(0x28, 0, 8))
    s["write_cmd_imm"] = iser_prm(2) + iser_hdr(wstag=0x4321, wva=0x7F0000002000) + bhs(
        OP_SCSI_CMD, 0xA1, itt=3, b20=8192, dsl=512, cdb=cdb10(0x2A, 0, 16)) + bytes(512)
    s["bidi"] = iser_prm(2) + iser_hdr(wstag=1, wva=2, rstag=3, rva=4) + bhs(
        OP_SCSI_CMD, 0xE1, itt=4, b20=512, ahs_words=2, cdb=cdb10(0x28, 0, 1)) + \
        struct.pack(">HBBI", 5, 2, 0, 512)
    ext = struct.pack(">HB", 17, 1) + b"\0" + bytes(16)
    s["ext_cdb"] = iser_prm(2) + iser_hdr() + bhs(OP_SCSI_CMD, 0x81, itt=5, ahs_words=5,
                                                  cdb=bytes([0x7F]) + bytes(15)) + ext
    s["padded"] = iser_prm(2) + iser_hdr() + bhs(OP_NOP_OUT, 0x80, itt=6, dsl=5) + b"hello\0\0\0"
    s["hello"] = iser_prm() + struct.pack(">B3xBBH", 0x20, 0x10, 0x10, 16) + bytes(24)
    s["text_discovery"] = iser_prm(1) + iser_hdr() + bhs(OP_TEXT, 0x80, itt=7, dsl=16) + \
        b"SendTargets=All\0"
    s["cm_private_data"] = iser_prm(4 | 8, limit=0x00100000) + bytes([0x40, 0, 0, 0])
    s["scsi_rsp_fit"] = iser_prm(limit=0x00010020) + bytes([0x21, 0x80, 0, 0, 0, 0, 0, 96]) + \
        bytes(40) + struct.pack(">H", 94) + bytes([0x70, 0, 5]) + bytes(93)
    s["plan_iovs"] = iser_prm(sge=8, limit=0x30000010) + bytes([0x02, 0x00, 0x0F, 0xFF, 0, 0x10,
                                                               0x08, 0x00, 0, 0, 0x01, 0x00])
    return s


# ---------------------------------------------------------------- fuzz_tcp_rx

T_STAMP, T_R2T, T_BAD_HD, T_BAD_DD, T_RAW_DSL, T_EXPSTAT, T_UNSOL = 1, 2, 4, 8, 0x10, 0x20, 0x40
HD, DD, FRAMED, INIT_R2T, IMM = 1, 2, 4, 8, 0x10


def tcp_rec(ctl, h, data=b"", ahs=b""):
    return struct.pack(">BBH", ctl, len(ahs) // 4, len(data)) + h + ahs + data


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def wire(h, data=b"", hd=False, dd=False):
    """A PDU as the initiator frames it, for the raw-mode seeds."""
    h = bytearray(h)
    h[5:8] = struct.pack(">I", len(data))[1:]
    out = bytes(h)
    if hd:
        out += struct.pack("<I", crc32c(bytes(h)))
    if data:
        padded = data + b"\0" * (-len(data) % 4)
        out += padded
        if dd:
            out += struct.pack("<I", crc32c(padded))
    return out


def tcp_rx_seeds():
    s = {}
    std = T_STAMP | T_EXPSTAT
    wdata = bytes(range(256)) * 32
    tur = bhs(OP_SCSI_CMD, 0x81, itt=1)
    read = bhs(OP_SCSI_CMD, 0xC1, itt=2, b20=8192, cdb=cdb10(0x28, 0, 16))
    write = lambda itt, flags=0xA1, n=16: bhs(OP_SCSI_CMD, flags, itt=itt, b20=n * 512,
                                              cdb=cdb10(0x2A, 0, n))
    for cfg, name in ((FRAMED, "plain"), (FRAMED | HD | DD, "digests"), (FRAMED | HD, "hd")):
        s["read_" + name] = bytes([cfg]) + tcp_rec(std, read)
        # InitialR2T=Yes: everything solicited; answered to the R2Ts (MaxBurst 65536)
        s["write_r2t_" + name] = bytes([cfg | INIT_R2T]) + tcp_rec(std, write(3)) + \
            tcp_rec(T_R2T | T_EXPSTAT, bhs(OP_DATA_OUT), wdata[:4096]) + \
            tcp_rec(T_R2T | T_EXPSTAT, bhs(OP_DATA_OUT), wdata[4096:])
    # small MaxBurstLength: several R2Ts, MaxOutstandingR2T 4
    s["write_bursts"] = bytes([FRAMED | INIT_R2T | 0x80 | 0x20]) + tcp_rec(std, write(4)) + \
        b"".join(tcp_rec(T_R2T | T_EXPSTAT, bhs(OP_DATA_OUT), wdata[i:i + 512])
                 for i in range(0, 8192, 512))
    # immediate data, unsolicited Data-Out, then R2T for the rest
    s["write_imm_unsol_r2t"] = bytes([FRAMED | IMM | HD | DD]) + tcp_rec(
        std, write(5, 0x21), wdata[:1024]) + tcp_rec(T_UNSOL | T_EXPSTAT, bhs(OP_DATA_OUT, 0x80),
                                                    wdata[1024:4096]) + \
        tcp_rec(T_R2T | T_EXPSTAT, bhs(OP_DATA_OUT), wdata[4096:])
    s["write_bad_dd"] = bytes([FRAMED | INIT_R2T | DD]) + tcp_rec(std, write(6)) + \
        tcp_rec(T_R2T | T_EXPSTAT | T_BAD_DD, bhs(OP_DATA_OUT), wdata[:8192])
    s["bad_hd"] = bytes([FRAMED | HD]) + tcp_rec(std | T_BAD_HD, tur)
    s["dataout_wrong_ttt"] = bytes([FRAMED | INIT_R2T]) + tcp_rec(std, write(7)) + \
        tcp_rec(T_EXPSTAT, bhs(OP_DATA_OUT, 0x80, itt=7, ttt=0x12345678), wdata[:512])
    s["over_mrdsl"] = bytes([FRAMED | 0x20]) + tcp_rec(std, bhs(OP_NOP_OUT, 0x80, itt=9),
                                                      wdata[:2048])
    s["ahs_ext_cdb"] = bytes([FRAMED | HD]) + tcp_rec(
        std, bhs(OP_SCSI_CMD, 0x81, itt=10, cdb=bytes([0x7F]) + bytes(15)),
        ahs=struct.pack(">HB", 17, 1) + b"\0" + bytes(16))
    s["text_and_logout"] = bytes([FRAMED | DD]) + tcp_rec(
        std, bhs(OP_TEXT, 0x80, itt=11), text(b"SendTargets=All")) + \
        tcp_rec(std, bhs(OP_LOGOUT | 0x40, 0x80, itt=12))
    s["dsl_mismatch"] = bytes([FRAMED]) + tcp_rec(std | T_RAW_DSL, bhs(OP_NOP_OUT, 0x80, itt=13,
                                                                    dsl=100), b"x" * 8)
    # raw byte streams
    s["raw_nop"] = bytes([0, 0]) + wire(bhs(OP_NOP_OUT, 0x80, itt=1, cmdsn=2), b"ping")
    s["raw_nop_digests"] = bytes([HD | DD, 3]) + wire(bhs(OP_NOP_OUT, 0x80, itt=1, cmdsn=2),
                                                      b"ping", True, True)
    s["raw_read_bytewise"] = bytes([HD, 0]) + wire(tur[:24] + struct.pack(">I", 2) + tur[28:],
                                                  hd=True) + \
        wire(read[:24] + struct.pack(">I", 3) + read[28:], hd=True)
    s["raw_write_r2t_guess"] = bytes([INIT_R2T, 4]) + wire(
        write(3)[:24] + struct.pack(">I", 2) + write(3)[28:]) + wire(
        bhs(OP_DATA_OUT, 0x80, itt=3, ttt=0x100, b36=0, b40=0), wdata)
    s["raw_ahs_pad"] = bytes([HD | DD, 1]) + wire(bhs(OP_SCSI_CMD, 0x81, itt=4, cmdsn=2,
                                                      ahs_words=1) + struct.pack(">HBB", 1, 0x3F,
                                                                                 0), b"", False)
    return s


# ---------------------------------------------------------------- fuzz_ctl

CT = "iqn.2026-11.org.iserd:fz"       # the fuzzer's targets (fuzz_ctl.c setup())
CT2 = "iqn.2026-11.org.iserd:fz2"
CINI = "iqn.1993-08.org.debian:01:fz"


def rpc(method, params=None, rid=1, extra=None):
    import json
    o = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        o["params"] = params
    if rid is not None:
        o["id"] = rid
    if extra:
        o.update(extra)
    return json.dumps(o).encode()


def ctl_seeds():
    """One request text per file, as iserctl sends it (the fuzzer skips inputs
    naming config.save or file:/dev: backings, so none are here)."""
    s = {}
    chap = {"user": "u", "secret": "0123456789abcdef"}
    good = {
        "server_info": ("server.info", None),
        "target_list": ("target.list", {}),
        "target_show": ("target.show", {"target": CT}),
        "target_add": ("target.add", {"target": "iqn.2026-11.org.iserd:new", "alias": "a",
                                      "tpgt": 2, "luns": [{"lun": 0, "backing": "ram:1M"},
                                                          {"lun": 3, "backing": "zero:1G",
                                                           "read_only": True,
                                                           "block_size": 4096,
                                                           "vendor": "V", "product": "P",
                                                           "serial": "S1"}],
                                      "acl": [CINI], "chap": chap, "mutual_chap":
                                      {"user": "t", "secret": "fedcba9876543210"},
                                      "portals": ["tcp://127.0.0.1:0"]}),
        "target_add_min": ("target.add", {"target": "iqn.2026-11.org.iserd:min"}),
        "target_remove": ("target.remove", {"target": CT}),
        "target_remove_force": ("target.remove", {"target": CT2, "force": True}),
        "target_set_auth": ("target.set_auth", {"target": CT, "chap": chap}),
        "target_set_auth_off": ("target.set_auth", {"target": CT}),
        "target_bind": ("target.bind", {"target": CT, "portals": ["tcp://127.0.0.1:0"]}),
        "target_bind_all": ("target.bind", {"target": CT, "portals": []}),
        "lun_list": ("lun.list", {"target": CT2}),
        "lun_show": ("lun.show", {"target": CT, "lun": 0}),
        "lun_add": ("lun.add", {"target": CT, "lun": 1, "backing": "ram:64K"}),
        "lun_add_zero_ro": ("lun.add", {"target": CT, "lun": 255, "backing": "zero:1T,ro"}),
        "lun_remove": ("lun.remove", {"target": CT2, "lun": 1}),
        "lun_resize": ("lun.resize", {"target": CT, "lun": 0, "size": 2097152}),
        "lun_resize_str": ("lun.resize", {"target": CT, "lun": 0, "size": "2M"}),
        "lun_set_read_only": ("lun.set_read_only", {"target": CT, "lun": 0,
                                                    "read_only": True}),
        "portal_list": ("portal.list", None),
        "portal_add": ("portal.add", {"url": "tcp://127.0.0.1:0", "tpgt": 3}),
        "portal_add_v6": ("portal.add", {"url": "tcp://[::1]:0"}),
        "portal_remove": ("portal.remove", {"url": "tcp://127.0.0.1:0"}),
        "acl_list": ("acl.list", {"target": CT2}),
        "acl_add": ("acl.add", {"target": CT, "initiator": CINI, "chap": chap}),
        "acl_remove": ("acl.remove", {"target": CT2, "initiator": CINI}),
        "acl_set_auth": ("acl.set_auth", {"target": CT2, "initiator": CINI, "chap": chap,
                                          "mutual_chap": chap}),
        "discovery_set_auth": ("discovery.set_auth", {"chap": chap}),
        "discovery_set_auth_off": ("discovery.set_auth", {}),
        "session_list": ("session.list", {"target": CT}),
        "session_logout": ("session.logout", {"tsih": 1}),
        "connection_drop": ("connection.drop", {"tsih": 1, "cid": 0}),
        "stats_get": ("stats.get", {}),
        "stats_get_target": ("stats.get", {"target": CT2}),
        "stats_prometheus": ("stats.prometheus", None),
        "log_get": ("log.get", None),
        "log_set": ("log.set", {"level": "warn", "debug": ""}),
        "config_reload": ("config.reload", None),
    }
    for k, (m, p) in good.items():
        s["ok_" + k] = rpc(m, p)
    bad = {
        "unknown_method": rpc("no.such", {}),
        "method_int": b'{"jsonrpc":"2.0","method":7,"id":1}',
        "no_jsonrpc": b'{"method":"target.list","id":1}',
        "jsonrpc_1": b'{"jsonrpc":"1.0","method":"target.list","id":1}',
        "params_array": rpc("target.list", [1, 2]),
        "params_string": b'{"jsonrpc":"2.0","method":"target.show","params":"x","id":1}',
        "unknown_param": rpc("target.show", {"target": CT, "nope": 1}),
        "target_bad_name": rpc("target.add", {"target": "iqn.bad name"}),
        "target_exists": rpc("target.add", {"target": CT}),
        "target_missing": rpc("target.show", {"target": "iqn.2026-11.org.iserd:none"}),
        "lun_big": rpc("lun.add", {"target": CT, "lun": 4294967296, "backing": "ram:1M"}),
        "lun_neg": rpc("lun.show", {"target": CT, "lun": -1}),
        "lun_float": rpc("lun.show", {"target": CT, "lun": 1.5}),
        "lun_dup": rpc("lun.add", {"target": CT, "lun": 0, "backing": "ram:1M"}),
        "backing_bad": rpc("lun.add", {"target": CT, "lun": 2, "backing": "ram:12Q"}),
        "backing_none": rpc("lun.add", {"target": CT, "lun": 2, "backing": "nope:1"}),
        "block_size": rpc("lun.add", {"target": CT, "lun": 2, "backing": "ram:1M",
                                      "block_size": 1000}),
        "resize_odd": rpc("lun.resize", {"target": CT, "lun": 0, "size": 1000}),
        "resize_zero": rpc("lun.resize", {"target": CT, "lun": 0, "size": 0}),
        "resize_huge": b'{"jsonrpc":"2.0","method":"lun.resize","params":{"target":"' +
                       CT.encode() + b'","lun":0,"size":18446744073709551615},"id":1}',
        "resize_str_bad": rpc("lun.resize", {"target": CT, "lun": 0, "size": "1E"}),
        "ro_not_bool": rpc("lun.set_read_only", {"target": CT, "lun": 0, "read_only": 1}),
        "portal_bad": rpc("portal.add", {"url": "udp://1.2.3.4:5"}),
        "portal_iser": rpc("portal.add", {"url": "iser://127.0.0.1:0"}),
        "portal_remove_last": rpc("portal.remove", {"url": "tcp://127.0.0.1:0"}, rid="x"),
        "portal_tpgt_big": rpc("portal.add", {"url": "tcp://127.0.0.1:0", "tpgt": 70000}),
        "chap_not_object": rpc("target.set_auth", {"target": CT, "chap": "u:secret"}),
        "chap_extra_key": rpc("acl.add", {"target": CT, "initiator": CINI,
                                          "chap": {"user": "u", "secret": "s", "x": 1}}),
        "chap_short": rpc("discovery.set_auth", {"chap": {"user": "u", "secret": "s"}}),
        "chap_nul": b'{"jsonrpc":"2.0","method":"discovery.set_auth","params":{"chap":'
                    b'{"user":"u\u0000v","secret":"0123456789abcdef"}},"id":1}',
        "tsih_big": rpc("session.logout", {"tsih": 65536}),
        "cid_str": rpc("connection.drop", {"tsih": 1, "cid": "0"}),
        "log_bad_level": rpc("log.set", {"level": "loud"}),
        "log_debug_all": rpc("log.set", {"debug": "all"}),
        "reload_params": rpc("config.reload", {"x": 1}),
    }
    for k, v in bad.items():
        s["bad_" + k] = v
    # ids, notifications, batches
    s["id_string"] = rpc("target.list", None, rid="abc")
    s["id_null"] = rpc("target.list", None, rid=None, extra={"id": None})
    s["id_float"] = b'{"jsonrpc":"2.0","method":"target.list","id":1.5}'
    s["id_object"] = b'{"jsonrpc":"2.0","method":"target.list","id":{"a":[1]}}'
    s["id_huge"] = b'{"jsonrpc":"2.0","method":"target.list","id":' + b"9" * 400 + b"}"
    s["notification"] = rpc("lun.add", {"target": CT, "lun": 5, "backing": "ram:4K"}, rid=None)
    s["batch"] = b"[" + b",".join([rpc("target.list"), rpc("lun.list", {"target": CT}, rid=2),
                                   rpc("log.get", None, rid=None)]) + b"]"
    s["batch_changes"] = b"[" + b",".join([
        rpc("target.add", {"target": "iqn.2026-11.org.iserd:b"}, rid=1),
        rpc("lun.add", {"target": "iqn.2026-11.org.iserd:b", "lun": 1, "backing": "ram:1M"},
            rid=2),
        rpc("lun.resize", {"target": "iqn.2026-11.org.iserd:b", "lun": 1, "size": "2M"}, rid=3),
        rpc("target.remove", {"target": "iqn.2026-11.org.iserd:b", "force": True}, rid=4),
        rpc("portal.add", {"url": "tcp://127.0.0.1:0"}, rid=5),
        rpc("portal.list", None, rid=6)]) + b"]"
    s["batch_notifications"] = b"[" + rpc("target.list", rid=None) + b"," + \
        rpc("log.get", rid=None) + b"]"
    s["batch_empty"] = b"[]"
    s["batch_junk"] = b"[1, \"x\", null, [], {}]"
    s["batch_big"] = b"[" + b",".join([rpc("server.info", None, rid=i)
                                       for i in range(300)]) + b"]"
    s["batch_nested"] = b"[[" + rpc("target.list") + b"]]"
    # malformed text
    s["json_empty"] = b""
    s["json_space"] = b" \n"
    s["json_truncated"] = rpc("target.list")[:-3]
    s["json_trailing"] = rpc("target.list") + b"}"
    s["json_two_values"] = rpc("target.list") + b"\n" + rpc("log.get")
    s["json_scalar"] = b"42"
    s["json_string"] = b'"target.list"'
    s["json_deep"] = b"[" * 40 + b"]" * 40
    s["json_deep_params"] = (b'{"jsonrpc":"2.0","method":"target.add","params":{"target":' +
                             b'{"a":' * 30 + b"1" + b"}" * 30 + b'},"id":1}')
    s["json_huge_number"] = (b'{"jsonrpc":"2.0","method":"lun.show","params":{"target":"' +
                             CT.encode() + b'","lun":1e400},"id":1e400}')
    s["json_neg_zero"] = (b'{"jsonrpc":"2.0","method":"lun.show","params":{"target":"' +
                          CT.encode() + b'","lun":-0},"id":-0}')
    s["json_unicode"] = (b'{"jsonrpc":"2.0","method":"target.show","params":{"target":'
                         b'"iqn.2026-11.org.iserd:\u00e9\ud83d\ude00\xc3\xa9"},"id":"\u2028"}')
    s["json_lone_surrogate"] = (b'{"jsonrpc":"2.0","method":"target.show","params":'
                                b'{"target":"\ud800"},"id":1}')
    s["json_bad_utf8"] = (b'{"jsonrpc":"2.0","method":"target.show","params":'
                          b'{"target":"\xff\xfe"},"id":1}')
    s["json_nul_raw"] = b'{"jsonrpc":"2.0","method":"target.list\x00","id":1}'
    s["json_nul_escaped"] = b'{"jsonrpc":"2.0","method":"target.list\\u0000x","id":1}'
    s["json_dup_keys"] = (b'{"jsonrpc":"2.0","method":"target.list","method":"log.get",'
                          b'"id":1,"id":2}')
    s["json_control_chars"] = (b'{"jsonrpc":"2.0","method":"acl.add","params":{"target":"' +
                               CT.encode() + b'","initiator":"iqn.1993-08.x:\u001b[31m"},"id":1}')
    s["json_long_string"] = rpc("target.show", {"target": "iqn.2026-11.org.x:" + "a" * 5000})
    s["json_comments"] = b'/* c */ {"jsonrpc":"2.0","method":"target.list","id":1} // c'
    s["json_single_quotes"] = b"{'jsonrpc':'2.0','method':'target.list','id':1}"
    s["json_nan"] = (b'{"jsonrpc":"2.0","method":"lun.show","params":{"target":"x","lun":NaN},'
                     b'"id":Infinity}')
    return s


def pr_name(s):
    return bytes([len(s)]) + s


def pr_state(held, ptype, gen, holder, regs):
    """The shared PR state (pr_share.c): header, then the registrations."""
    b = b"ISPR" + bytes([1, held, ptype, 0]) + struct.pack(">IHH", gen, holder, len(regs))
    for key, rtpi, ip, tp in regs:
        b += struct.pack(">QH", key, rtpi) + pr_name(ip) + pr_name(tp)
    return b


def pr_share_seeds():
    """fuzz_pr_share: byte 0 even: a state object; odd: a change message."""
    ip = INAME + b",i,0x023d00000001"
    regs = [(0xA1, 1, ip, TNAME + b",t,0x1"), (0xB2, 2, ip, TNAME + b",t,0x2")]
    fx = b"ISPN" + bytes([1, 0]) + struct.pack(">H", 2)
    fx += struct.pack(">I", 1 << 5) + b"\x01" + pr_name(ip) + pr_name(TNAME + b",t,0x1")
    fx += struct.pack(">I", 1 << 4) + b"\x00" + pr_name(INAME + b",i,0x2") + \
        pr_name(TNAME + b",t,0x2")
    return {
        "state_empty": b"\x00",
        "state_ea": b"\x00" + pr_state(1, 3, 7, 1, regs),
        "state_all_regs": b"\x00" + pr_state(1, 8, 3, 0xFFFF, regs),
        "state_free": b"\x00" + pr_state(0, 0, 2, 0xFFFF, regs[:1]),
        "fx_two": b"\x01" + fx,
    }


GENERATORS = {
    "fuzz_ctl": ctl_seeds,
    "fuzz_tcp_rx": tcp_rx_seeds,
    "fuzz_iser_rx": iser_rx_seeds,
    "fuzz_init_rx": init_rx_seeds,
    "fuzz_scsi_params": scsi_params_seeds,
    "fuzz_ffp": ffp_seeds,
    "fuzz_login": login_seeds,
    "fuzz_pr_share": pr_share_seeds,
}


def main(argv):
    names = argv[1:] or sorted(GENERATORS)
    for name in names:
        if name not in GENERATORS:
            sys.exit("make_corpus.py: no generator for %s (have: %s)" %
                     (name, " ".join(sorted(GENERATORS))))
        d = os.path.join(HERE, "corpus", name)
        os.makedirs(d, exist_ok=True)
        for f in os.listdir(d):
            if f.startswith("seed_"):
                os.unlink(os.path.join(d, f))
        seeds = GENERATORS[name]()
        for k in sorted(seeds):
            with open(os.path.join(d, "seed_" + k), "wb") as f:
                f.write(seeds[k])
        print("%s: %d seeds, %d bytes" % (name, len(seeds), sum(len(v) for v in seeds.values())))


if __name__ == "__main__":
    main(sys.argv)
