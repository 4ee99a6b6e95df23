#!/usr/bin/env python3
"""Writes the committed seed corpus: fuzz/corpus/<target>/<name>.

    python3 fuzz/seeds.py fuzz

Deterministic; rerun it after changing a harness's input format (for
session_script: the field order of `Script`/`Step` in testkit/src/session_script/mod.rs, encoded
here in the `arbitrary` 1.x layout: enums as a little-endian u32, u8 as one
byte, bool as one byte, Option as a bool byte then the value, and the trailing
`steps` Vec as (1, element)* then 0).
"""
import json, struct, zlib, os, sys
root = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
def w(target, name, data):
    d = os.path.join(root, 'corpus', target); os.makedirs(d, exist_ok=True)
    if isinstance(data, str): data = data.encode()
    open(os.path.join(d, name), 'wb').write(data)

# ---------- WebSocket server frames (unmasked) ----------
def frame(op, payload=b'', fin=True, rsv=0, mask=None):
    if isinstance(payload, str): payload = payload.encode()
    b0 = (0x80 if fin else 0) | (rsv << 4) | op
    n = len(payload); m = 0x80 if mask else 0
    if n < 126: hdr = bytes([b0, m | n])
    elif n < 65536: hdr = bytes([b0, m | 126]) + struct.pack('>H', n)
    else: hdr = bytes([b0, m | 127]) + struct.pack('>Q', n)
    if mask:
        payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload)); hdr += mask
    return hdr + payload
text = lambda s: frame(1, s)
binary = lambda b: frame(2, b)
ping = lambda b=b'': frame(9, b)
pong = lambda b=b'': frame(10, b)
close = lambda code, reason='': frame(8, struct.pack('>H', code) + reason.encode())

ASKS = [("45285.2","0.00100000"),("45286.4","1.54571953"),("45286.6","1.54571109"),("45289.6","1.54560911"),("45290.2","0.15890660"),("45291.8","1.54553491"),("45294.7","0.04454749"),("45296.1","0.35380000"),("45297.5","0.09945542"),("45299.5","0.18772827")]
BIDS = [("45283.5","0.10000000"),("45283.4","1.54582015"),("45282.1","0.10000000"),("45281.0","0.10000000"),("45280.3","1.54592586"),("45279.0","0.07990000"),("45277.6","0.03310103"),("45277.5","0.30000000"),("45277.3","1.54602737"),("45276.6","0.15445238")]
def crc(asks, bids):
    s = ''
    for p, q in asks[:10] + bids[:10]:
        s += p.replace('.', '').lstrip('0') + q.replace('.', '').lstrip('0')
    return zlib.crc32(s.encode()) & 0xffffffff
assert crc(ASKS, BIDS) == 3310070434
lv = lambda levels: '[' + ','.join('{"price":%s,"qty":%s}' % l for l in levels) + ']'
def book(kind, sym, asks, bids, cs):
    return '{"channel":"book","type":"%s","data":[{"symbol":"%s","bids":%s,"asks":%s,"checksum":%d,"timestamp":"2023-10-06T17:35:55.440295Z"}]}' % (kind, sym, lv(bids), lv(asks), cs)
FULL_SNAP = book('snapshot', 'BTC/USD', ASKS, BIDS, 3310070434)
A3, B3 = ASKS[:3], BIDS[:3]
SNAP = book('snapshot', 'BTC/USD', A3, B3, crc(A3, B3))
# update: delete best ask, add a bid
asks2 = A3[1:]; bids2 = sorted(B3 + [("45283.9", "0.50000000")], key=lambda l: -float(l[0]))
UPD = book('update', 'BTC/USD', [("45285.2", "0.00000000")], [("45283.9", "0.50000000")], crc(asks2, bids2))
fa = ASKS[1:]; fb = sorted(BIDS + [("45283.9", "0.50000000")], key=lambda l: -float(l[0]))[:10]
UPD_FULL = book('update', 'BTC/USD', [("45285.2", "0.00000000")], [("45283.9", "0.50000000")], crc(fa, fb))
UPD_BAD = book('update', 'BTC/USD', [("45286.4", "2.0")], [], 12345)

KALSHI = [
 '{"id": 1, "type": "subscribed", "msg": {"channel": "ticker", "sid": 7}}',
 '{"type": "ticker", "sid": 7, "seq": 1, "msg": {"market_ticker": "KXBTC-25", "price": 52}}',
 '{"type": "orderbook_delta", "sid": 7, "seq": 2, "msg": {"price": 51, "delta": -3, "side": "yes"}}',
 '{"type": "orderbook_delta", "sid": 7, "seq": 2, "msg": {"price": 51, "delta": -3, "side": "yes"}}',
 '{"type": "orderbook_delta", "sid": 7, "seq": 5, "msg": {"price": 50, "delta": 1, "side": "no"}}',
 '{"id": 1, "type": "error", "msg": {"code": 6, "msg": "Already subscribed"}}',
 '{"id": 2, "sid": 7, "seq": 12, "type": "unsubscribed"}',
 '{"id": 3, "type": "ok"}',
 '{"type": "ticker", "sid": 8, "msg": {}}',
 '{"id": 2, "type": "subscribed", "msg": {"channel": "orderbook_delta", "sid": 8}}',
 '{"type": "orderbook_delta", "sid": 8, "seq": 1, "msg": {}}',
 '{"id": 3, "type": "subscribed", "msg": {"channel": "ticker", "sid": 9}}',
 '{"type": "ticker", "sid": 9, "seq": 1, "msg": {}}',
]
KRAKEN = [
 '{"channel":"status","type":"update","data":[{"api_version":"v2","connection_id":13834774380200032777,"system":"online","version":"2.0.0"}]}',
 '{"method":"subscribe","result":{"channel":"book","depth":10,"snapshot":true,"symbol":"BTC/USD"},"success":true,"time_in":"2023-09-25T09:04:31.742599Z","time_out":"2023-09-25T09:04:31.742648Z","req_id":1}',
 SNAP, UPD,
 '{"channel":"heartbeat"}',
 '{"method":"pong","req_id":101,"time_in":"2023-09-24T14:10:23.799685Z","time_out":"2023-09-24T14:10:23.799703Z"}',
 '{"error":"Currency pair not supported XBT/USD","method":"subscribe","success":false,"symbol":"XBT/USD","time_in":"2023-09-25T09:04:31.742599Z","time_out":"2023-09-25T09:04:31.742648Z","req_id":2}',
 '{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","bid":45283.5,"ask":45285.2,"last":45284.0}]}',
 '{"method":"subscribe","result":{"channel":"ticker","symbol":"BTC/USD"},"success":true,"req_id":2}',
 '{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","bid":45283.5,"ask":45285.2,"last":45284.0}]}',
 '{"method":"subscribe","result":{"channel":"book","depth":10,"snapshot":true,"symbol":"ETH/USD"},"success":true,"req_id":1}',
 UPD_BAD,
 '{"method":"subscribe","result":{"channel":"book","depth":10,"snapshot":true,"symbol":"BTC/USD"},"success":true,"req_id":3}',
]

# ---------- frame_read: selector + server bytes ----------
w('frame_read', 'raw_text_binary_ping_close', bytes([0x00]) + text('hello') + binary(b'\x00\x01\x02') + ping(b'p') + text('{"a":1}') + pong() + close(1000, 'bye'))
w('frame_read', 'kalshi_session_close_1011', bytes([0x01]) + b''.join(text(f) for f in KALSHI) + close(1011, 'restart'))
w('frame_read', 'kraken_book_fragmented_close_4001', bytes([0x02]) + text(KRAKEN[0]) + text(KRAKEN[1]) + frame(1, SNAP[:100], fin=False) + ping() + frame(0, SNAP[100:300], fin=False) + frame(0, SNAP[300:]) + b''.join(text(f) for f in KRAKEN[3:]) + close(4001, 'auth'))
w('frame_read', 'violations_one_byte_reads', bytes([0x11]) + text('ok') + frame(1, b'\xff\xfe bad utf8') + frame(1, 'rsv', rsv=4) + frame(1, 'masked', mask=b'\x01\x02\x03\x04'))
w('frame_read', 'oversize_header_kalshi_cap1', bytes([0x81]) + text(KALSHI[1]) + bytes([0x82, 127]) + struct.pack('>Q', 100000) + b'\x00' * 16)
w('frame_read', 'error_policy_flood_eof', bytes([0x08 | 0x20]) + b''.join(text('{"n":%d}' % i) for i in range(12)))
w('frame_read', 'raw_handshake_refused', bytes([0x40]) + b'HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n')
w('frame_read', 'kraken_no_close_eof_chunk17', bytes([0x32]) + b''.join(text(f) for f in KRAKEN) + frame(1, 'trunc', fin=False))

w('frame_read', 'kraken_token_session_expired', bytes([0x03]) + text(KRAKEN[1]) + text(SNAP) + text('{"error":"ESession:Invalid session","method":"subscribe","success":false,"symbol":"BTC/USD","req_id":2}') + text(UPD))

# ---------- ws_bridge: setup byte, script seed, server bytes after the 101 ----------
w('ws_bridge', 'frames_ping_close_block16k', bytes([0x07, 0x00]) + text('hello') + binary(b'\x00\x01\x02') + ping(b'p') + text('{"a":1}') + pong() + close(1000, 'bye'))
w('ws_bridge', 'kalshi_burst_block3_reads3', bytes([0x00, 0x5a]) + b''.join(text(f) for f in KALSHI))
w('ws_bridge', 'fragmented_ping_inside_block7', bytes([0x0a, 0x33]) + text(KRAKEN[0]) + frame(1, SNAP[:100], fin=False) + ping(b'mid') + frame(0, SNAP[100:300], fin=False) + frame(0, SNAP[300:]) + close(4001, 'auth'))
w('ws_bridge', 'violations_small_limits', bytes([0x2b, 0x99]) + text('ok') + frame(1, b'\xff\xfe bad utf8') + frame(1, 'rsv', rsv=4))
w('ws_bridge', 'oversize_frame_small_limits', bytes([0x23, 0x01]) + text('x' * 150) + text('y' * 250))
w('ws_bridge', 'masked_server_frame', bytes([0x05, 0x10]) + text('a') + frame(1, 'masked', mask=b'\x01\x02\x03\x04'))
w('ws_bridge', 'writes_block_pings_eof', bytes([0x46, 0xc7]) + b''.join(ping(bytes([i])) + text('{"n":%d}' % i) for i in range(20)) + frame(1, 'trunc', fin=False))
w('ws_bridge', 'close_then_more_frames', bytes([0x4e, 0x21]) + text('before') + close(1001, 'going') + text('after'))

# ---------- classify ----------
w('kalshi_classify', 'documented_frames.jsonl', '\n'.join(KALSHI))
w('kalshi_classify', 'edges.jsonl', '\n'.join([
 '{"type":"ok"}', '{"id":"1","type":"unsubscribed"}', '{"id":18446744073709551616,"type":"subscribed","msg":{"channel":"x","sid":1}}',
 '{"extra":[1,{"a":null}],"type":"subscribed","id":5,"msg":{"channel":"tick\\u0065r","sid":8,"more":true}}',
 '{"type":42,"sid":7}', '{"type":"error","msg":"nope"}', '{"id":1,"type":"subscribed","msg":{"channel":"x"}}',
 '{"sid":1,"sid":2}', '[1,2]', '{', 'null', '{"type":"x"} trailing', '{"type":"ticker","sid":18446744073709551615,"seq":0}']))
w('kraken_classify', 'book_session.jsonl', '\n'.join(['#sub book 10 BTC/USD'] + KRAKEN[:2] + [FULL_SNAP, UPD_FULL] + KRAKEN[4:]))
w('kraken_classify', 'batched_and_symbolless.jsonl', '\n'.join([
 '#sub ticker - BTC/USD ETH/USD', '#sub executions',
 '{"method":"subscribe","result":{"channel":"ticker","symbol":"BTC/USD"},"success":true,"req_id":2}',
 '{"method":"subscribe","result":{"channel":"ticker","symbol":"ETH/USD","warnings":["deprecated"]},"success":true,"req_id":2}',
 '{"method":"subscribe","result":{"channel":"executions"},"success":true,"req_id":3}',
 '{"channel":"ticker","type":"snapshot","data":[{"symbol":"ETH/USD","last":1600.1}]}',
 '{"channel":"executions","type":"update","sequence":12,"data":[{"symbol":"BTC/USD","order_id":"O1"}]}',
 '{"method":"unsubscribe","result":{"channel":"ticker","symbol":"BTC/USD"},"success":true,"req_id":4}',
 '#unsub ticker BTC/USD', '#forget executions', '#reset',
 '{"method":"add_order","error":"EOrder:Insufficient funds","success":false,"req_id":9}',
 '{"error":"ESession:Invalid session"}', '{"foo":1}']))
w('kraken_classify', 'book_odd_frames.jsonl', '\n'.join([
 '#sub book 25 BTC/USD ETH/USD', SNAP.replace('BTC/USD', 'ETH/USD'),
 book('update', 'ETH/USD', [("1e5", "1")], [], 1),
 '{"channel":"book","type":"snapshot","data":[{"symbol":"BTC/USD","bids":[{"price":"45283.5","qty":"0.1"}],"asks":[],"checksum":"4294967295"}]}',
 '{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":null,"checksum":-1}]}',
 '{"channel":"book","type":"update","data":{"symbol":"BTC/USD"}}',
 '{"channel":"book","type":"snapshot","data":[{"symbol":"SOL/USD","asks":[{"price":1,"qty":0}],"bids":[],"checksum":0},{"symbol":"BTC/USD","asks":[],"bids":[]}]}']))

# ---------- kraken_book ----------
fmt = lambda levels: ' '.join('%s:%s' % l for l in levels)
w('kraken_book', 'published_example', '\n'.join(['10', 'S ' + fmt(ASKS) + ' | ' + fmt(BIDS), 'U 45285.2:0 | 45283.9:0.50000000', 'U 45285.20:0.0 45300.0:1 | 45276.6:0 45276.60:2']))
w('kraken_book', 'truncation_and_equal_prices', '\n'.join(['3', 'S 1:1 2:1 3:1 4:1 | 9:1 8:1 7:1 6:1', 'U 0.5:1 | 9.5:1', 'U 0.1:1 0.1:0 | 009.50:3', 'U 0.00100000:1 0.001:2 0.0010:3 | 1.0:0.000']))
w('kraken_book', 'odd_numbers', '\n'.join(['2', 'S 1:1 | 0.5:1', 'U 1e5:1 | ', 'U 1:1 -1:1', 'U | 2:+1', 'U .5:1', 'U 5.:1', 'U 1.2.3:1', 'U ' + '9' * 65 + ':1', 'U ' + '1' * 64 + ':' + '1' * 64, 'U 1:', 'U \u0661:1', 'S']))
w('kraken_book', 'depth_zero', '\n'.join(['0', 'S 1:1 | 2:2', 'U 3:3 | 4:4']))

# ---------- weex_book ----------
w('weex_book', 'cap_and_equal_prices', '\n'.join(['3', 'S 1:1 2:1 3:1 4:1 | 9:1 8:1 7:1 6:1', 'C 0.5:1 | 9.5:1', 'C 0.1:1 0.1:0 | 009.50:3', 'C 0.00100000:1 0.001:2 0.0010:3 | 1.0:0.000']) + '\n')
w('weex_book', 'documented_then_gap', '\n'.join(['8', 'S 2090.10:3.4 2090.20:0.9 | 2089.90:1.2 2089.80:0.7', 'C 2090.1:2.4 | 2089.90:0 2089.85:5', 'G 2090.3:1 | ', 'C 2090.4:1 | ', 'S 2090.10:1 | 2089.90:1', 'C | 2089.90:0']) + '\n')
w('weex_book', 'odd_numbers', '\n'.join(['4', 'S 1:1 | 0.5:1', 'C 1e2:1 | 5E-1:2', 'C -1:1', 'S 1:1', 'C | 2:+1', 'S 1:1', 'C .5:1', 'S 1:1', 'C 1.2.3:1', 'S 1:1', 'C ' + '9' * 65 + ':1', 'S 1:1', 'C 1:', 'S 1:1', 'C "1":1', 'S 1:1', 'C -0:1 1:-0', 'S ' + '1' * 39 + ':1 | 0.' + '1' * 29 + ':1', 'C 1:1']) + '\n')
w('weex_book', 'cap_zero', '\n'.join(['0', 'S 1:1 | 2:2', 'C 3:3 | 4:4', 'G 5:5', 'S']) + '\n')

# ---------- session_script (arbitrary 1.x layout) ----------
def variant(i, n): return struct.pack('<I', -(-(i << 32) // n))
def b(x): return bytes([1 if x else 0])
def u(x): return bytes([x])
def u16(x): return struct.pack('<H', x)
STEPS = ['Connect', 'Drop', 'Subscribe', 'Unsubscribe', 'Send', 'Request', 'Close', 'Ack', 'Reject',
         'Response', 'Data', 'Unsolicited', 'Other', 'ServerClose', 'Write', 'WriteFail', 'Tick', 'Read',
         'DropConsumer', 'Unblock']
def step(name, *fields): return variant(STEPS.index(name), len(STEPS)) + b''.join(fields)
def sid(kind, x=0): return variant(['Num','Key','Seen'].index(kind), 3) + u(x)
def seq(kind, x=None):
    return variant(['None','Next','Repeat','Jump','Abs'].index(kind), 5) + (u(x) if x is not None else b'')
def script(steps, batch=False, stash=3, stash_bytes=0, resync=True, token=False, app_ping=False,
           pings=False, timeout=1, rate=0, inbound_cap=2, inbound_pol=0, idle=0):
    head = (b(batch) + u(stash) + u(stash_bytes) + b(resync) + b(token) + b(app_ping) + b(pings)
            + u(timeout) + u(rate) + u(inbound_cap) + u(inbound_pol) + u(idle))
    return head + b''.join(b'\x01' + s for s in steps) + b'\x00'
Connect = step('Connect'); Drop = step('Drop'); Send = step('Send'); Request = step('Request')
Close = step('Close'); Unsolicited = step('Unsolicited'); WriteFail = step('WriteFail')
def Subscribe(ch, sym, count, cap, pol): return step('Subscribe', u(ch), u(sym), u(count), u(cap), u(pol))
def Unsub(pick): return step('Unsubscribe', u(pick))
def Ack(req, member, s, nc, ns, echo=True): return step('Ack', u(req), u(member), s, u(int(nc)), u(int(ns)), b(echo))
def Reject(req, symbol=None, expired=False): return step('Reject', u(req), (b(True) + u(symbol)) if symbol is not None else b(False), b(expired))
def Response(req, error=False): return step('Response', u(req), b(error))
def Data(s, q, bad=False): return step('Data', s, q, b(bad))
def Other(kind): return step('Other', u(kind))
def ServerClose(code): return step('ServerClose', u(code))
def Write(n=3): return step('Write', u(n))
def Tick(ms): return step('Tick', u16(ms))
def Read(pick, mx): return step('Read', u(pick), u(mx))
def DropConsumer(pick, lost): return step('DropConsumer', u(pick), b(lost))
def Unblock(timeout, ms=10): return step('Unblock', b(timeout), u(ms))
W = Write(3)
w('session_script', 'kalshi_reconnect_remap', script([
  Connect, Subscribe(0, 0, 0, 2, 0), Subscribe(1, 1, 0, 2, 1), W, Ack(1, 0, sid('Num', 1), True, False), Ack(0, 0, sid('Num', 2), True, False),
  Data(sid('Num', 1), seq('Next')), Data(sid('Num', 1), seq('Next')), Data(sid('Num', 2), seq('Next')), Read(1, 7),
  Drop, Connect, W, Data(sid('Num', 1), seq('Next')), Data(sid('Num', 3), seq('Next')),
  Ack(1, 0, sid('Num', 3), True, False), Ack(0, 0, sid('Num', 4), True, False), Data(sid('Num', 1), seq('Next')), Data(sid('Num', 3), seq('Next')),
  Data(sid('Num', 4), seq('Repeat')), Read(1, 7), Read(2, 7)], stash=4))
w('session_script', 'batched_gap_resync_stash', script([
  Subscribe(1, 0, 2, 1, 0), Connect, W, Ack(0, 2, sid('Key'), True, True), Ack(0, 0, sid('Key'), True, True), Data(sid('Key', 0), seq('Next')),
  Ack(0, 1, sid('Key'), True, True), Data(sid('Key', 1), seq('Next')), Data(sid('Key', 1), seq('Jump', 3)), W,
  Data(sid('Key', 1), seq('Next')), Data(sid('Seen', 1), seq('None'), True), Ack(0, 0, sid('Key'), True, True), Read(1, 7), Read(2, 7),
  Tick(5000)], batch=True, stash=3))
w('session_script', 'reject_timeout_unroutable', script([
  Connect, Subscribe(0, 0, 1, 0, 2), W, Reject(0, 1), Subscribe(2, 2, 0, 0, 1), W, Data(sid('Num', 5), seq('Abs', 3)),
  Data(sid('Num', 4), seq('Abs', 255)), Tick(1500), Tick(1500), Data(sid('Num', 5), seq('None')), Reject(0), Read(1, 7),
  Read(2, 7), Unsub(0)], stash=1, stash_bytes=1, resync=False))
w('session_script', 'overflow_policies_block_and_dropped_consumers', script([
  Connect, Subscribe(0, 0, 0, 0, 0), Subscribe(0, 1, 0, 0, 1), Subscribe(0, 2, 0, 0, 2), Subscribe(2, 0, 0, 0, 3), Write(3), Write(3),
  Ack(0, 0, sid('Num', 1), False, False), Ack(1, 0, sid('Num', 2), False, False), Ack(2, 0, sid('Num', 3), False, False), Ack(3, 0, sid('Num', 4), False, False),
  Data(sid('Num', 1), seq('None')), Data(sid('Num', 1), seq('None')), Data(sid('Num', 2), seq('None')), Data(sid('Num', 2), seq('None')),
  Data(sid('Num', 3), seq('None')), Data(sid('Num', 3), seq('None')), Data(sid('Num', 4), seq('None')), Data(sid('Num', 4), seq('None')),
  Read(4, 1), Unblock(False), Data(sid('Num', 4), seq('None')), Unblock(True, 200), Read(1, 3), Read(2, 3), Read(3, 3),
  DropConsumer(1, True), Data(sid('Num', 1), seq('None')), DropConsumer(1, False), Unsolicited, Unsolicited, Unsolicited, Read(0, 2),
  Drop, Connect, Read(1, 7)], stash=2, inbound_cap=1, inbound_pol=1))
w('session_script', 'no_echo_alias_and_expired_session', script([
  Subscribe(1, 0, 1, 1, 0), Subscribe(0, 2, 0, 1, 0), Connect, W, Ack(1, 1, sid('Key'), 1, 1, echo=False), Ack(1, 0, sid('Key'), 1, 2),
  Data(sid('Key', 0), seq('Next')), Reject(0, 2, True), Data(sid('Key', 2), seq('Next')), Connect, W, Ack(255, 0, sid('Key'), 1, 0, echo=False),
  Ack(0, 0, sid('Num', 3), 2, 2), Read(1, 7), Read(2, 7)], batch=True, stash=2, token=True))
w('session_script', 'displaced_server_id_and_duplicate_topic', script([
  Connect, Subscribe(0, 0, 0, 1, 0), Subscribe(1, 0, 0, 1, 0), Subscribe(0, 0, 0, 1, 0), W, Ack(1, 0, sid('Num', 1), False, False),
  Ack(0, 0, sid('Num', 1), False, False), Data(sid('Num', 1), seq('Next')), Subscribe(2, 1, 0, 1, 0), W, Data(sid('Num', 2), seq('Next')),
  Ack(0, 0, sid('Num', 2), False, False), Read(1, 7), Read(2, 7), Read(3, 7)], batch=True, stash=2))
w('session_script', 'requests_sends_pings_close', script([
  Connect, Send, Request, Subscribe(0, 0, 0, 1, 0), Write(3), Write(3), Response(0), Request, Write(1), Tick(2100), Write(1),
  Other(1), Tick(2100), Write(1), Tick(900), Ack(0, 0, sid('Num', 2), True, True), Send, Other(0), Other(4), Other(5), Other(7),
  Close, Write(1), Data(sid('Num', 2), seq('Next')), ServerClose(0)], pings=True, app_ping=True, timeout=1, rate=2))
w('session_script', 'abandoned_subscribe_late_ack_and_fatal_close', script([
  Connect, Subscribe(0, 0, 1, 1, 0), W, Unsub(0), Ack(0, 0, sid('Num', 1), True, True), Ack(0, 1, sid('Num', 2), True, True),
  Request, WriteFail, Connect, W, Tick(3000), Write(3), Ack(0, 0, sid('Num', 3), True, True), Tick(5000), ServerClose(2)], timeout=2))
w('session_script', 'block_consumer_leaves_while_parked', script([
  Connect, Subscribe(0, 0, 0, 0, 3), Subscribe(1, 1, 0, 0, 3), W, Ack(1, 0, sid('Num', 1), True, True), Ack(0, 0, sid('Num', 2), True, True),
  Data(sid('Num', 1), seq('Next')), Data(sid('Num', 1), seq('Next')), DropConsumer(1, True), Unblock(False), Data(sid('Num', 1), seq('Next')),
  Data(sid('Num', 2), seq('Next')), Data(sid('Num', 2), seq('Next')), DropConsumer(1, False), Unblock(False), Tick(10), Read(0, 3)]))
# Timers: a Tick sleeps only until the drive's next wake-up (timer or write
# slot), so each deadline below takes its own Tick and the harness checks that
# none of them is slept through.
w('session_script', 'request_and_subscribe_timeouts', script([
  Connect, Subscribe(0, 0, 0, 1, 0), Request, W, Tick(5000), Request, W, Tick(400), Tick(400), Tick(400), Tick(400),
  Subscribe(1, 1, 0, 1, 0), W, Ack(0, 0, sid('Num', 1), True, True), Request, Request, W, Tick(700), Response(0), Tick(700),
  Drop, Connect, W, Tick(3000), Connect, W, Ack(0, 0, sid('Num', 2), True, True), Tick(3000)], timeout=0, rate=1))
w('session_script', 'ping_pong_timeouts', script([
  Connect, Tick(5000), Tick(100), Other(6), Tick(5000), Tick(5000), Connect, Tick(2500), Tick(100), Other(5),
  Tick(1500), Connect, Request, W, Tick(1000), Close, Tick(5000)], pings=True, timeout=2))
w('session_script', 'app_ping_pong_timeout', script([
  Connect, Tick(2000), Tick(10), Other(1), Tick(2000), Write(1), Tick(600), Other(0), Tick(600), Connect, Tick(9000), Tick(9000)],
  pings=True, app_ping=True, rate=2))
# Idle timeout 1 s (idle=4): the watch looks every 250 ms; data, unsolicited
# frames and heartbeats keep the feed alive, pongs do not, a Block stall does
# not count as silence.
w('session_script', 'idle_timeouts', script([
  Connect, Subscribe(0, 0, 0, 0, 3), W, Ack(0, 0, sid('Num', 1), True, True), Tick(300), Data(sid('Num', 1), seq('Next')),
  Tick(300), Tick(300), Unsolicited, Tick(300), Other(0), Tick(300), Tick(300), Other(6), Tick(300), Tick(300), Tick(300),
  Tick(300), Connect, W, Ack(0, 0, sid('Num', 2), True, True), Data(sid('Num', 2), seq('Next')), Data(sid('Num', 2), seq('Next')),
  Unblock(False, 200), Unblock(True, 250), Tick(600), Tick(600), Tick(600), Tick(600), Tick(600), Tick(600), Tick(600), Tick(600)], idle=4))

# ---------- reconnect_script (testkit/src/reconnect_script.rs) ----------
# Header: initial (index into 1,3,10,50,200,1000 ms), cap (initial * (1 + x % 40)),
# factor (1 + x % 3), max_attempts (x % 6: 0|1 none, n: n - 1), reset_after
# (x % 8 * 250 ms), close rule (0 default, 1 only 1011, 2 1013 and 4001).
# Steps of four bytes: op (% 4: 0 timeout, 1 refused, 2 token, 3 session; bits
# 2-3 a session hint, bits 4-7 its length in 100 ms), a (attempt ms % 50), b
# (session length), c (bit 0 worked, bits 1-4 end: 0 close on request, 1 dropped,
# else a close code index; bits 6-7 the length's scale 1/10/100/1000 ms;
# for a refused attempt: Retry-After c * 10 ms, 0 = a 503 without one).
def rstep(op, a=0, b=0, c=0): return bytes([op, a, b, c])
def session(lasted, scale, worked, end, hint=None):
    op = 3 if hint is None else 3 | 4 | (hint << 4)
    return rstep(op, 5, lasted, (scale << 6) | (end << 1) | int(worked))
def rhead(initial=3, capx=9, factor=1, max_attempts=0, reset=4, rule=0):
    return bytes([initial, capx, factor, max_attempts, reset, rule])
w('reconnect_script', 'failures_grow_to_the_cap', rhead() + rstep(0) * 12)
w('reconnect_script', 'max_attempts_gives_up', rhead(max_attempts=4) + rstep(0) + rstep(2) + rstep(0) + rstep(0))
w('reconnect_script', 'retry_after_and_503', rhead(initial=2) + rstep(1, 3, 0, 40) + rstep(1, 3, 0, 0) + rstep(1, 0, 0, 250))
w('reconnect_script', 'healthy_session_quick_retry', rhead(reset=2) + rstep(0) * 3 + session(200, 1, True, 1) * 3)
w('reconnect_script', 'short_working_sessions', rhead(initial=4, reset=6) + session(3, 1, True, 1) + session(30, 1, True, 1) + session(0, 0, True, 1) + session(2, 2, False, 1))
w('reconnect_script', 'close_1013_waits_the_cap', rhead(initial=3, capx=20) + session(200, 1, True, 11))
w('reconnect_script', 'permanent_close_stops', rhead() + session(20, 1, True, 1) + session(20, 1, True, 4))
w('reconnect_script', 'configured_close_rule', rhead(rule=1) + session(20, 1, True, 4) + session(20, 1, True, 9))
w('reconnect_script', 'closed_on_request', rhead() + rstep(0) + session(10, 1, True, 0))
w('reconnect_script', 'lockout_hint_in_session', rhead(initial=1) + session(10, 1, True, 1, hint=7) + session(10, 1, False, 1, hint=1))
w('reconnect_script', 'sessions_that_never_work_count', rhead(max_attempts=3) + session(50, 1, False, 1) + session(50, 1, False, 2) + session(50, 1, False, 1))

# ---------- venue_time ----------
# Text mode (first byte below 0x80): each line goes to every adapter raw and as
# each venue's payload. The documented frames come from tests/data.
DATA = os.path.join(root, '..', 'tests', 'data')
def load(*path): return json.load(open(os.path.join(DATA, *path)))
compact = lambda v: json.dumps(v, separators=(',', ':'))
# One small file per venue: libFuzzer's length limit starts at the largest seed.
w('venue_time', 'kalshi_documented.jsonl', '\n'.join(
    compact(e['frame']) for e in load('kalshi', 'examples.json')['examples']
    if e['expect'] == 'data' and '"ts' in compact(e['frame'])))
kraken = [e['frame'] for e in load('kraken', 'v2_examples.json')['examples']
          if isinstance(e.get('frame'), str) and 'timestamp' in e['frame'] and len(e['frame']) < 1200]
w('venue_time', 'kraken_documented.jsonl', '\n'.join(kraken))
okx = load('okx', 'documented.json')
w('venue_time', 'okx_documented.jsonl', '\n'.join(compact(okx[k]['frame']) for k in ('tickers_push', 'trades_push', 'books_update')))
w('venue_time', 'weex_documented.jsonl', '\n'.join(
    open(os.path.join(DATA, 'weex', f)).read().strip() for f in ('trade.json', 'bookTicker.json', 'depth.json')))
w('venue_time', 'tricky_payloads.jsonl', '\n'.join([
    '[{"ts":"1630048897897","x":{"ts":"1"}}]',
    '[{"ts" : "1630048897897"},{"ts":"0001630048897897"}]',
    '{"note":"a \\"ts_ms\\":5","ts":1707667200}',
    '{"t\\u0073_ms":1,"ts_ms":1707667200123,"ts":"2026-02-14T15:30:00Z"}',
    '[{"timestamp":"2023-09-25T09:49:37.708706+02:00","n":{"timestamp":1}}]',
    '[{"timestamp":"2023-09-25T07:49:37.708706Z","timestamp":"1969-12-31T23:30:00-01:00"}]',
    '{"e":"trade","E":18446744073709551615,"s":"BTCUSDT","d":[{"E":1}]}',
    '{"ts":"16300\\u00348897897"}',
    '{"ts":18446744073709551615}',
]))
# Generator mode (first byte 0x80 and up): frames from the bytes.
w('venue_time', 'generated_mixed', bytes([0x80]) + bytes(range(0, 256, 3)))
w('venue_time', 'generated_nested', bytes([0x80, 1, 3, 0, 1, 7, 2, 0, 8, 1, 4, 1, 0, 0, 2, 9, 1, 0, 2, 0, 5, 1, 3]) * 3)

# ---------- scan_skip: one JSON value per line ----------
# Strings and digit runs of every length around a word (each line is also
# checked from each of its first offsets), every escape, control bytes,
# numbers past u64, literals cut short, white space in every gap, nesting at
# and past the scanner's limit, and the bench's frames.
def scan_lines():
    lines = []
    for n in range(0, 19):
        lines.append('"' + 'a' * n + '"')
        lines.append('"' + 'x' * n + '\\n' + 'y' * (n % 9) + '"')
        lines.append('"' + '\u00e9' * n + '"')
        lines.append('1' + '0' * n)
        lines.append('-0.' + '5' * (n + 1) + 'e+' + '7' * (n % 4 + 1))
        lines.append('{"' + 'k' * n + '":' + '9' * (n + 1) + ',"' + 'q' * (n % 8) + '":"' + 'v' * n + '"}')
    lines += [
        '"\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u00e9 \\uD800 \\uABCD"', '"\\u12"', '"\\u12G4"', '"\\x"',
        '"tab\tinside"', '"a\x01b"', '"a\x1fb"', '"\x7f\x80"', '"unterminated', '"ends in backslash\\',
        '0', '-0', '01', '1.', '.5', '1e', '1e+', '+1', '-', '18446744073709551615', '18446744073709551616',
        '99999999999999999999', '00', '1E400', '123456789012345678901234567890',
        'true', 'false', 'null', 'tru', 'nul', 'fals', 'truex', 'nullnull',
        '[]', '{}', '[ ]', '{ }', '[1,]', '[1 2]', '{"a"}', '{"a":1,}', '{1:2}', '{"a":1]', '[1}', '{,}', ']',
        ' \t\r\n[ 1 , [ ] , { } , { "a" : [ null ] } ] \n',
        '{"a" : 1 , "b":2,"c" :3, "d": 4 ,"e":{"f":[true,false,null,"g\\u0068"]}}',
        '{"s\\u0069d":7,"sid":8}', '{"sid":7,"sid":8}', '{"":0}', '{"a":1,"a":2}',
        '{"type":"ticker","sid":1,"seq":123,"msg":{"market_ticker":"KX-000","price":45,"yes_bid":44,"yes_ask":46,"ts":10000000123}}',
        '{"channel":"ticker","type":"update","data":[{"symbol":"SYM000/USD","bid":45000.1,"bid_qty":0.00001234,"ask":45001.8,"ask_qty":1.00008638,"last":45000.9,"volume":1001.00001234,"vwap":45012.3,"low":44210.0,"high":46118.9,"change":0.1,"change_pct":0.01,"timestamp":"2026-12-03T12:00:01.001234Z"}]}',
        '[' * 64 + ']' * 64, '[' * 65 + ']' * 65, '{"a":' * 63 + '1' + '}' * 63, '{"a":' * 64 + '1' + '}' * 64,
    ]
    return lines
w('scan_skip', 'edges.jsonl', '\n'.join(scan_lines()))
