;; Loops that TF.js's WebAssembly backend lacks, in 128-bit WebAssembly SIMD, working in the
;; backend's own memory (imported) so that tensors are read and written where they lie.
;; Addresses are byte offsets; arrays are float32 unless said otherwise.
;;
;; Assemble with wabt: wat2wasm simd-kernels.wat -o simd-kernels.wasm; the bytes
;; are kept, base64-encoded, in simd-kernels.ts (test/kernel.test.ts checks that they match).
(module
  (import "env" "memory" (memory 1))

  ;; dst[c][r] = src[r][c] for a row-major [rows, cols] src: whole 4 x 4 blocks by lane shuffles,
  ;; in strips of 8 columns, so that the 8 output rows being written share the L1 cache even when
  ;; their stride is a power of two (wider strips ran 2 to 4 times slower on 1024 x 512); the
  ;; remaining rows and columns one value at a time.
  (func (export "transpose")
    (param $src i32) (param $dst i32) (param $rows i32) (param $cols i32)
    (local $rows4 i32) (local $cols4 i32) (local $strip i32) (local $stripEnd i32)
    (local $r i32) (local $c i32) (local $in i32) (local $out i32)
    (local $rowBytes i32) (local $colBytes i32)
    (local $p0 v128) (local $p1 v128) (local $p2 v128) (local $p3 v128)
    (local $t0 v128) (local $t1 v128) (local $t2 v128) (local $t3 v128)
    (local.set $rows4 (i32.and (local.get $rows) (i32.const -4)))
    (local.set $cols4 (i32.and (local.get $cols) (i32.const -4)))
    (local.set $rowBytes (i32.shl (local.get $cols) (i32.const 2)))
    (local.set $colBytes (i32.shl (local.get $rows) (i32.const 2)))

    (local.set $strip (i32.const 0))
    (block $stripsDone
      (loop $strips
        (br_if $stripsDone (i32.ge_u (local.get $strip) (local.get $cols4)))
        (local.set $stripEnd (i32.add (local.get $strip) (i32.const 8)))
        (if (i32.gt_u (local.get $stripEnd) (local.get $cols4))
          (then (local.set $stripEnd (local.get $cols4))))
        (local.set $r (i32.const 0))
        (block $rowsDone
          (loop $rowLoop
            (br_if $rowsDone (i32.ge_u (local.get $r) (local.get $rows4)))
            (local.set $c (local.get $strip))
            (block $colsDone
              (loop $colLoop
                (br_if $colsDone (i32.ge_u (local.get $c) (local.get $stripEnd)))
                ;; in = src + (r * cols + c) * 4
                (local.set $in
                  (i32.add (local.get $src)
                    (i32.shl
                      (i32.add (i32.mul (local.get $r) (local.get $cols)) (local.get $c))
                      (i32.const 2))))
                (local.set $p0 (v128.load align=4 (local.get $in)))
                (local.set $in (i32.add (local.get $in) (local.get $rowBytes)))
                (local.set $p1 (v128.load align=4 (local.get $in)))
                (local.set $in (i32.add (local.get $in) (local.get $rowBytes)))
                (local.set $p2 (v128.load align=4 (local.get $in)))
                (local.set $in (i32.add (local.get $in) (local.get $rowBytes)))
                (local.set $p3 (v128.load align=4 (local.get $in)))
                ;; pairs of rows interleaved: t0 = p0[0] p1[0] p0[1] p1[1], t1 = p0[2] p1[2] ...
                (local.set $t0 (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23
                  (local.get $p0) (local.get $p1)))
                (local.set $t1 (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31
                  (local.get $p0) (local.get $p1)))
                (local.set $t2 (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23
                  (local.get $p2) (local.get $p3)))
                (local.set $t3 (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31
                  (local.get $p2) (local.get $p3)))
                ;; out = dst + (c * rows + r) * 4; column c + j of the block is output row c + j
                (local.set $out
                  (i32.add (local.get $dst)
                    (i32.shl
                      (i32.add (i32.mul (local.get $c) (local.get $rows)) (local.get $r))
                      (i32.const 2))))
                (v128.store align=4 (local.get $out)
                  (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23
                    (local.get $t0) (local.get $t2)))
                (local.set $out (i32.add (local.get $out) (local.get $colBytes)))
                (v128.store align=4 (local.get $out)
                  (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31
                    (local.get $t0) (local.get $t2)))
                (local.set $out (i32.add (local.get $out) (local.get $colBytes)))
                (v128.store align=4 (local.get $out)
                  (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23
                    (local.get $t1) (local.get $t3)))
                (local.set $out (i32.add (local.get $out) (local.get $colBytes)))
                (v128.store align=4 (local.get $out)
                  (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31
                    (local.get $t1) (local.get $t3)))
                (local.set $c (i32.add (local.get $c) (i32.const 4)))
                (br $colLoop)))
            (local.set $r (i32.add (local.get $r) (i32.const 4)))
            (br $rowLoop)))
        (local.set $strip (local.get $stripEnd))
        (br $strips)))

    ;; the last cols % 4 columns, every row
    (call $scalar (local.get $src) (local.get $dst) (local.get $rows) (local.get $cols)
      (i32.const 0) (local.get $rows) (local.get $cols4) (local.get $cols))
    ;; the last rows % 4 rows, the other columns
    (call $scalar (local.get $src) (local.get $dst) (local.get $rows) (local.get $cols)
      (local.get $rows4) (local.get $rows) (i32.const 0) (local.get $cols4)))

  ;; One AdamW step over n weights, with the gradient of an L2 penalty added (l2x2 = 2 l2):
  ;; g' = g + l2x2 w; m = beta1 m + (1 - beta1) g'; v = beta2 v + (1 - beta2) g'^2 (m, v in place);
  ;; out = w decay - stepSize m / (sqrt(v) rootInv + epsilon). Returns sum(w^2) of the weights
  ;; before the step, accumulated in float64.
  (func (export "adamw")
    (param $w i32) (param $g i32) (param $m i32) (param $v i32) (param $out i32) (param $n i32)
    (param $beta1 f32) (param $beta2 f32) (param $stepSize f32) (param $rootInv f32)
    (param $epsilon f32) (param $decay f32) (param $l2x2 f32)
    (result f64)
    (local $i i32) (local $end4 i32) (local $at i32)
    (local $W v128) (local $G v128) (local $M v128) (local $V v128) (local $S v128)
    (local $sum v128) (local $total f64)
    (local $ws f32) (local $gs f32) (local $ms f32) (local $vs f32)
    (local.set $end4 (i32.and (local.get $n) (i32.const -4)))
    (local.set $sum (f64x2.splat (f64.const 0)))
    (block $done
      (loop $lanes
        (br_if $done (i32.ge_u (local.get $i) (local.get $end4)))
        (local.set $at (i32.shl (local.get $i) (i32.const 2)))
        (local.set $W (v128.load align=4 (i32.add (local.get $w) (local.get $at))))
        (local.set $G
          (f32x4.add (v128.load align=4 (i32.add (local.get $g) (local.get $at)))
            (f32x4.mul (local.get $W) (f32x4.splat (local.get $l2x2)))))
        (local.set $M
          (f32x4.add
            (f32x4.mul (v128.load align=4 (i32.add (local.get $m) (local.get $at)))
              (f32x4.splat (local.get $beta1)))
            (f32x4.mul (local.get $G)
              (f32x4.splat (f32.sub (f32.const 1) (local.get $beta1))))))
        (local.set $V
          (f32x4.add
            (f32x4.mul (v128.load align=4 (i32.add (local.get $v) (local.get $at)))
              (f32x4.splat (local.get $beta2)))
            (f32x4.mul (f32x4.mul (local.get $G) (local.get $G))
              (f32x4.splat (f32.sub (f32.const 1) (local.get $beta2))))))
        (v128.store align=4 (i32.add (local.get $m) (local.get $at)) (local.get $M))
        (v128.store align=4 (i32.add (local.get $v) (local.get $at)) (local.get $V))
        (v128.store align=4 (i32.add (local.get $out) (local.get $at))
          (f32x4.sub
            (f32x4.mul (local.get $W) (f32x4.splat (local.get $decay)))
            (f32x4.div
              (f32x4.mul (local.get $M) (f32x4.splat (local.get $stepSize)))
              (f32x4.add
                (f32x4.mul (f32x4.sqrt (local.get $V)) (f32x4.splat (local.get $rootInv)))
                (f32x4.splat (local.get $epsilon))))))
        (local.set $S (f32x4.mul (local.get $W) (local.get $W)))
        (local.set $sum
          (f64x2.add (local.get $sum)
            (f64x2.add (f64x2.promote_low_f32x4 (local.get $S))
              (f64x2.promote_low_f32x4
                (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7
                  (local.get $S) (local.get $S))))))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $lanes)))
    (local.set $total
      (f64.add (f64x2.extract_lane 0 (local.get $sum)) (f64x2.extract_lane 1 (local.get $sum))))
    (block $tailDone
      (loop $tail
        (br_if $tailDone (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $at (i32.shl (local.get $i) (i32.const 2)))
        (local.set $ws (f32.load (i32.add (local.get $w) (local.get $at))))
        (local.set $gs
          (f32.add (f32.load (i32.add (local.get $g) (local.get $at)))
            (f32.mul (local.get $ws) (local.get $l2x2))))
        (local.set $ms
          (f32.add
            (f32.mul (f32.load (i32.add (local.get $m) (local.get $at))) (local.get $beta1))
            (f32.mul (local.get $gs) (f32.sub (f32.const 1) (local.get $beta1)))))
        (local.set $vs
          (f32.add
            (f32.mul (f32.load (i32.add (local.get $v) (local.get $at))) (local.get $beta2))
            (f32.mul (f32.mul (local.get $gs) (local.get $gs))
              (f32.sub (f32.const 1) (local.get $beta2)))))
        (f32.store (i32.add (local.get $m) (local.get $at)) (local.get $ms))
        (f32.store (i32.add (local.get $v) (local.get $at)) (local.get $vs))
        (f32.store (i32.add (local.get $out) (local.get $at))
          (f32.sub (f32.mul (local.get $ws) (local.get $decay))
            (f32.div (f32.mul (local.get $ms) (local.get $stepSize))
              (f32.add (f32.mul (f32.sqrt (local.get $vs)) (local.get $rootInv))
                (local.get $epsilon)))))
        (local.set $total
          (f64.add (local.get $total) (f64.promote_f32 (f32.mul (local.get $ws) (local.get $ws)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $tail)))
    (local.get $total))

  ;; The first j in [0, count) with a[j] - b[j] >= t (float32), or count when there is none:
  ;; four values a step until one of them qualifies, then one at a time.
  (func (export "firstAtLeast")
    (param $a i32) (param $b i32) (param $count i32) (param $t f32) (result i32)
    (local $j i32) (local $end4 i32) (local $at i32) (local $tv v128)
    (local.set $end4 (i32.and (local.get $count) (i32.const -4)))
    (local.set $tv (f32x4.splat (local.get $t)))
    (block $hit
      (loop $quads
        (br_if $hit (i32.ge_u (local.get $j) (local.get $end4)))
        (local.set $at (i32.shl (local.get $j) (i32.const 2)))
        (br_if $hit
          (v128.any_true
            (f32x4.ge
              (f32x4.sub
                (v128.load align=4 (i32.add (local.get $a) (local.get $at)))
                (v128.load align=4 (i32.add (local.get $b) (local.get $at))))
              (local.get $tv))))
        (local.set $j (i32.add (local.get $j) (i32.const 4)))
        (br $quads)))
    (block $done
      (loop $single
        (br_if $done (i32.ge_u (local.get $j) (local.get $count)))
        (local.set $at (i32.shl (local.get $j) (i32.const 2)))
        (br_if $done
          (f32.ge
            (f32.sub
              (f32.load (i32.add (local.get $a) (local.get $at)))
              (f32.load (i32.add (local.get $b) (local.get $at))))
            (local.get $t)))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $single)))
    (local.get $j))

  ;; Nearest-neighbour candidates, one query per row of a score matrix: row i of `products`
  ;; (`width` values) belongs to query `first + i`, and its column j to matrix position
  ;; `from + j`, scored products[i][j] - squares[from + j] in float32. Each query keeps its `size`
  ;; largest scores (at scores + 4 q size) with their positions (at positions + 4 q size), largest
  ;; first, equal scores ordered by rowOf[position], lowest first; kept[q] counts them. A first pass
  ;; takes the `size`-th largest of the row's maxima over blocks of 16 columns (kept sorted at
  ;; `scratch`, `size` floats): at least `size` scores reach it, so no score below it can be kept
  ;; and the second pass offers only those that reach it and the query's lowest kept score,
  ;; passing over a block of 16 whose maximum does not reach them (each block's four lane maxima
  ;; are kept after the list, from the next 16-byte boundary); in a block it does not pass over,
  ;; the columns to offer come from a 16-bit mask of those that reach them, one set bit at a
  ;; time (a branch per column offered, not per column). The columns after the last whole block
  ;; go four at a time.
  (func (export "offerRows")
    (param $products i32) (param $squares i32) (param $width i32) (param $count i32)
    (param $from i32) (param $first i32) (param $size i32)
    (param $scores i32) (param $positions i32) (param $kept i32) (param $rowOf i32)
    (param $scratch i32)
    (local $i i32) (local $least f32) (local $j i32) (local $lane i32) (local $end4 i32)
    (local $row i32)
    (local $sq i32) (local $keptAt i32) (local $n i32) (local $floor f32) (local $score f32)
    (local $at i32)
    (local $listScores i32) (local $listPositions i32) (local $blocks i32) (local $end16 i32)
    (local $mask i32) (local $k i32)
    (local.set $end4 (i32.and (local.get $width) (i32.const -4)))
    (local.set $end16 (i32.and (local.get $width) (i32.const -16)))
    (local.set $blocks
      (i32.and
        (i32.add (local.get $scratch)
          (i32.add (i32.shl (local.get $size) (i32.const 2)) (i32.const 15)))
        (i32.const -16)))
    (local.set $sq (i32.add (local.get $squares) (i32.shl (local.get $from) (i32.const 2))))
    (block $rowsDone
      (loop $rows
        (br_if $rowsDone (i32.ge_u (local.get $i) (local.get $count)))
        (local.set $row
          (i32.add (local.get $products)
            (i32.shl (i32.mul (local.get $i) (local.get $width)) (i32.const 2))))
        (local.set $keptAt
          (i32.add (local.get $kept)
            (i32.shl (i32.add (local.get $first) (local.get $i)) (i32.const 2))))
        (local.set $listScores
          (i32.add (local.get $scores)
            (i32.shl
              (i32.mul (i32.add (local.get $first) (local.get $i)) (local.get $size))
              (i32.const 2))))
        (local.set $listPositions
          (i32.add (local.get $positions)
            (i32.sub (local.get $listScores) (local.get $scores))))
        (local.set $n (i32.load (local.get $keptAt)))
        (local.set $least
          (call $blockFloor (local.get $row) (local.get $sq) (local.get $width) (local.get $size)
            (local.get $scratch) (local.get $blocks)))
        (local.set $floor
          (call $larger (local.get $least)
            (call $floorOf (local.get $listScores) (local.get $n) (local.get $size))))
        (local.set $j (i32.const 0))
        (block $quadsDone
          (loop $quads
            (br_if $quadsDone (i32.ge_u (local.get $j) (local.get $end4)))
            ;; a whole block of 16: passed over if no lane maximum reaches the floor, else the
            ;; columns that reach it are taken from a mask of the 16, lowest first
            (if (i32.lt_u (local.get $j) (local.get $end16))
              (then
                (if
                  (v128.any_true
                    (f32x4.ge
                      (v128.load align=4 (i32.add (local.get $blocks) (local.get $j)))
                      (f32x4.splat (local.get $floor))))
                  (then
                    (local.set $at
                      (i32.add (local.get $row) (i32.shl (local.get $j) (i32.const 2))))
                    (local.set $k
                      (i32.add (local.get $sq) (i32.shl (local.get $j) (i32.const 2))))
                    (local.set $mask
                      (i32.or
                        (i32.or
                          (i32x4.bitmask
                            (f32x4.ge
                              (f32x4.sub (v128.load align=4 (local.get $at))
                                (v128.load align=4 (local.get $k)))
                              (f32x4.splat (local.get $floor))))
                          (i32.shl
                            (i32x4.bitmask
                              (f32x4.ge
                                (f32x4.sub (v128.load offset=16 align=4 (local.get $at))
                                  (v128.load offset=16 align=4 (local.get $k)))
                                (f32x4.splat (local.get $floor))))
                            (i32.const 4)))
                        (i32.or
                          (i32.shl
                            (i32x4.bitmask
                              (f32x4.ge
                                (f32x4.sub (v128.load offset=32 align=4 (local.get $at))
                                  (v128.load offset=32 align=4 (local.get $k)))
                                (f32x4.splat (local.get $floor))))
                            (i32.const 8))
                          (i32.shl
                            (i32x4.bitmask
                              (f32x4.ge
                                (f32x4.sub (v128.load offset=48 align=4 (local.get $at))
                                  (v128.load offset=48 align=4 (local.get $k)))
                                (f32x4.splat (local.get $floor))))
                            (i32.const 12)))))
                    (block $maskDone
                      (loop $bits
                        (br_if $maskDone (i32.eqz (local.get $mask)))
                        (local.set $lane (i32.ctz (local.get $mask)))
                        (local.set $mask
                          (i32.and (local.get $mask) (i32.sub (local.get $mask) (i32.const 1))))
                        (local.set $score
                          (f32.sub
                            (f32.load
                              (i32.add (local.get $at) (i32.shl (local.get $lane) (i32.const 2))))
                            (f32.load
                              (i32.add (local.get $k) (i32.shl (local.get $lane) (i32.const 2))))))
                        (if (f32.ge (local.get $score) (local.get $floor))
                          (then
                            (local.set $n
                              (call $offer (local.get $listScores) (local.get $listPositions)
                                (local.get $rowOf) (local.get $n) (local.get $size)
                                (i32.add (local.get $from)
                                  (i32.add (local.get $j) (local.get $lane)))
                                (local.get $score)))
                            (local.set $floor
                              (call $larger (local.get $least)
                                (call $floorOf (local.get $listScores) (local.get $n)
                                  (local.get $size))))))
                        (br $bits)))))
                (local.set $j (i32.add (local.get $j) (i32.const 16)))
                (br $quads)))
            (if
              (v128.any_true
                (f32x4.ge
                  (f32x4.sub
                    (v128.load align=4
                      (i32.add (local.get $row) (i32.shl (local.get $j) (i32.const 2))))
                    (v128.load align=4
                      (i32.add (local.get $sq) (i32.shl (local.get $j) (i32.const 2)))))
                  (f32x4.splat (local.get $floor))))
              (then
                (local.set $lane (i32.const 0))
                (loop $lanes
                  (local.set $at
                    (i32.shl (i32.add (local.get $j) (local.get $lane)) (i32.const 2)))
                  (local.set $score
                    (f32.sub
                      (f32.load (i32.add (local.get $row) (local.get $at)))
                      (f32.load (i32.add (local.get $sq) (local.get $at)))))
                  (if (f32.ge (local.get $score) (local.get $floor))
                    (then
                      (local.set $n
                        (call $offer (local.get $listScores) (local.get $listPositions)
                          (local.get $rowOf) (local.get $n) (local.get $size)
                          (i32.add (local.get $from) (i32.add (local.get $j) (local.get $lane)))
                          (local.get $score)))
                      (local.set $floor
                        (call $larger (local.get $least)
                          (call $floorOf (local.get $listScores) (local.get $n)
                            (local.get $size))))))
                  (local.set $lane (i32.add (local.get $lane) (i32.const 1)))
                  (br_if $lanes (i32.lt_u (local.get $lane) (i32.const 4))))))
            (local.set $j (i32.add (local.get $j) (i32.const 4)))
            (br $quads)))
        (block $tailDone
          (loop $tail
            (br_if $tailDone (i32.ge_u (local.get $j) (local.get $width)))
            (local.set $at (i32.shl (local.get $j) (i32.const 2)))
            (local.set $score
              (f32.sub
                (f32.load (i32.add (local.get $row) (local.get $at)))
                (f32.load (i32.add (local.get $sq) (local.get $at)))))
            (if (f32.ge (local.get $score) (local.get $floor))
              (then
                (local.set $n
                  (call $offer (local.get $listScores) (local.get $listPositions)
                    (local.get $rowOf) (local.get $n) (local.get $size)
                    (i32.add (local.get $from) (local.get $j)) (local.get $score)))
                (local.set $floor
                  (call $larger (local.get $least)
                    (call $floorOf (local.get $listScores) (local.get $n) (local.get $size))))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $tail)))
        (i32.store (local.get $keptAt) (local.get $n))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $rows))))

  ;; The `size`-th largest of the maxima of row[j] - sq[j] over whole blocks of 16 columns, kept in
  ;; a list sorted largest first at `list`; -infinity when there are fewer than `size` blocks. A
  ;; block none of whose values beats the last entry of a full list is passed over whole. The
  ;; four lane maxima of the block at column b are stored at blocks + b (16 bytes a block).
  (func $blockFloor
    (param $row i32) (param $sq i32) (param $width i32) (param $size i32) (param $list i32)
    (param $blocks i32) (result f32)
    (local $b i32) (local $end i32) (local $n i32) (local $k i32) (local $at i32)
    (local $m v128) (local $top f32) (local $last f32)
    (local.set $end (i32.and (local.get $width) (i32.const -16)))
    (local.set $last (f32.const -inf))
    (block $done
      (loop $blocks
        (br_if $done (i32.ge_u (local.get $b) (local.get $end)))
        (local.set $at (i32.shl (local.get $b) (i32.const 2)))
        ;; pmax: the plain lane-wise maximum (the values hold no NaN)
        (local.set $m
          (f32x4.pmax
            (f32x4.pmax
              (f32x4.sub
                (v128.load align=4 (i32.add (local.get $row) (local.get $at)))
                (v128.load align=4 (i32.add (local.get $sq) (local.get $at))))
              (f32x4.sub
                (v128.load offset=16 align=4 (i32.add (local.get $row) (local.get $at)))
                (v128.load offset=16 align=4 (i32.add (local.get $sq) (local.get $at)))))
            (f32x4.pmax
              (f32x4.sub
                (v128.load offset=32 align=4 (i32.add (local.get $row) (local.get $at)))
                (v128.load offset=32 align=4 (i32.add (local.get $sq) (local.get $at))))
              (f32x4.sub
                (v128.load offset=48 align=4 (i32.add (local.get $row) (local.get $at)))
                (v128.load offset=48 align=4 (i32.add (local.get $sq) (local.get $at)))))))
        (v128.store align=4 (i32.add (local.get $blocks) (local.get $b)) (local.get $m))
        ;; the block's maximum, lanes folded pairwise without a branch
        (local.set $top
          (f32x4.extract_lane 0
            (f32x4.pmax
              (local.tee $m
                (f32x4.pmax (local.get $m)
                  (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7
                    (local.get $m) (local.get $m))))
              (i8x16.shuffle 4 5 6 7 0 1 2 3 12 13 14 15 8 9 10 11
                (local.get $m) (local.get $m)))))
        (if
          (i32.or (i32.lt_u (local.get $n) (local.get $size))
            (f32.gt (local.get $top) (local.get $last)))
          (then
            ;; insert top, the last entry dropping out of a full list
            (local.set $k (local.get $n))
            (if (i32.eq (local.get $n) (local.get $size))
              (then (local.set $k (i32.sub (local.get $size) (i32.const 1))))
              (else (local.set $n (i32.add (local.get $n) (i32.const 1)))))
            (block $placed
              (loop $shift
                (br_if $placed (i32.eqz (local.get $k)))
                (local.set $at (i32.shl (i32.sub (local.get $k) (i32.const 1)) (i32.const 2)))
                (br_if $placed
                  (f32.ge (f32.load (i32.add (local.get $list) (local.get $at))) (local.get $top)))
                (f32.store offset=4 (i32.add (local.get $list) (local.get $at))
                  (f32.load (i32.add (local.get $list) (local.get $at))))
                (local.set $k (i32.sub (local.get $k) (i32.const 1)))
                (br $shift)))
            (f32.store (i32.add (local.get $list) (i32.shl (local.get $k) (i32.const 2)))
              (local.get $top))
            (if (i32.eq (local.get $n) (local.get $size))
              (then
                (local.set $last
                  (f32.load
                    (i32.add (local.get $list)
                      (i32.shl (i32.sub (local.get $size) (i32.const 1)) (i32.const 2)))))))))
        (local.set $b (i32.add (local.get $b) (i32.const 16)))
        (br $blocks)))
    (call $floorOf (local.get $list) (local.get $n) (local.get $size)))

  ;; The larger of two values that are not NaN.
  (func $larger (param $a f32) (param $b f32) (result f32)
    (select (local.get $a) (local.get $b) (f32.gt (local.get $a) (local.get $b))))

  ;; The lowest score a full list keeps; -infinity while it has room.
  (func $floorOf (param $list i32) (param $n i32) (param $size i32) (result f32)
    (if (result f32) (i32.lt_u (local.get $n) (local.get $size))
      (then (f32.const -inf))
      (else
        (f32.load
          (i32.add (local.get $list)
            (i32.shl (i32.sub (local.get $size) (i32.const 1)) (i32.const 2)))))))

  ;; Inserts (score, position) into a list of n kept entries, ranked as above, unless the list is
  ;; full and its last entry ranks before it (a larger score, or an equal one from a lower row);
  ;; returns the new count.
  (func $offer
    (param $listScores i32) (param $listPositions i32) (param $rowOf i32) (param $n i32)
    (param $size i32) (param $position i32) (param $score f32) (result i32)
    (local $row i32) (local $k i32) (local $at i32) (local $kept f32)
    (local.set $row
      (i32.load (i32.add (local.get $rowOf) (i32.shl (local.get $position) (i32.const 2)))))
    (local.set $k (local.get $n))
    (if (i32.eq (local.get $n) (local.get $size))
      (then
        (local.set $k (i32.sub (local.get $size) (i32.const 1)))
        (local.set $at (i32.shl (local.get $k) (i32.const 2)))
        (local.set $kept (f32.load (i32.add (local.get $listScores) (local.get $at))))
        (if (f32.gt (local.get $kept) (local.get $score)) (then (return (local.get $n))))
        (if (f32.eq (local.get $kept) (local.get $score))
          (then
            (if
              (i32.lt_s
                (i32.load
                  (i32.add (local.get $rowOf)
                    (i32.shl
                      (i32.load (i32.add (local.get $listPositions) (local.get $at)))
                      (i32.const 2))))
                (local.get $row))
              (then (return (local.get $n))))))))
    ;; shift the entries that rank after it one place down
    (block $placed
      (loop $shift
        (br_if $placed (i32.eqz (local.get $k)))
        (local.set $at (i32.shl (i32.sub (local.get $k) (i32.const 1)) (i32.const 2)))
        (local.set $kept (f32.load (i32.add (local.get $listScores) (local.get $at))))
        (br_if $placed (f32.gt (local.get $kept) (local.get $score)))
        (if (f32.eq (local.get $kept) (local.get $score))
          (then
            (br_if $placed
              (i32.lt_s
                (i32.load
                  (i32.add (local.get $rowOf)
                    (i32.shl
                      (i32.load (i32.add (local.get $listPositions) (local.get $at)))
                      (i32.const 2))))
                (local.get $row)))))
        (f32.store (i32.add (i32.add (local.get $listScores) (local.get $at)) (i32.const 4))
          (local.get $kept))
        (i32.store (i32.add (i32.add (local.get $listPositions) (local.get $at)) (i32.const 4))
          (i32.load (i32.add (local.get $listPositions) (local.get $at))))
        (local.set $k (i32.sub (local.get $k) (i32.const 1)))
        (br $shift)))
    (local.set $at (i32.shl (local.get $k) (i32.const 2)))
    (f32.store (i32.add (local.get $listScores) (local.get $at)) (local.get $score))
    (i32.store (i32.add (local.get $listPositions) (local.get $at)) (local.get $position))
    (i32.add (local.get $n) (i32.lt_u (local.get $n) (local.get $size))))

  ;; Final ranking of nearest-neighbour candidates by float64 distance, for queries
  ;; [qFrom, qTo): query q's values are row q of `values` (float32, `dim` each) when q < shared,
  ;; else row n + q - shared; its candidates are the kept[q] matrix positions at
  ;; positions + 4 q fetch, whose values are rows of `values` and whose row indices are at
  ;; rowOf. A candidate with the query's own row index (q < shared) is passed over. Writes the
  ;; row indices of the k nearest, nearest first and equal distances lowest row index first,
  ;; at out + 4 q k and their number at outCounts + 4 q; `distances` has room for k float64.
  ;; Each distance is summed in float64, dimension by dimension in order.
  (func (export "rerank")
    (param $values i32) (param $dim i32) (param $rowOf i32) (param $n i32) (param $shared i32)
    (param $positions i32) (param $kept i32) (param $fetch i32) (param $k i32)
    (param $qFrom i32) (param $qTo i32) (param $out i32) (param $outCounts i32)
    (param $distances i32)
    (local $q i32) (local $self i32) (local $qv i32) (local $list i32) (local $c i32)
    (local $end i32) (local $p i32) (local $row i32) (local $cv i32) (local $d i32)
    (local $sum f64) (local $diff f64) (local $count i32) (local $at i32) (local $rows i32)
    (local $stride i32)
    (local.set $stride (i32.shl (local.get $dim) (i32.const 2)))
    (local.set $q (local.get $qFrom))
    (block $queriesDone
      (loop $queries
        (br_if $queriesDone (i32.ge_u (local.get $q) (local.get $qTo)))
        (if (i32.lt_u (local.get $q) (local.get $shared))
          (then
            (local.set $self
              (i32.load (i32.add (local.get $rowOf) (i32.shl (local.get $q) (i32.const 2)))))
            (local.set $qv
              (i32.add (local.get $values) (i32.mul (local.get $q) (local.get $stride)))))
          (else
            (local.set $self (i32.const -1))
            (local.set $qv
              (i32.add (local.get $values)
                (i32.mul
                  (i32.sub (i32.add (local.get $n) (local.get $q)) (local.get $shared))
                  (local.get $stride))))))
        (local.set $list
          (i32.add (local.get $positions)
            (i32.shl (i32.mul (local.get $q) (local.get $fetch)) (i32.const 2))))
        (local.set $end
          (i32.add (local.get $list)
            (i32.shl
              (i32.load (i32.add (local.get $kept) (i32.shl (local.get $q) (i32.const 2))))
              (i32.const 2))))
        (local.set $rows
          (i32.add (local.get $out)
            (i32.shl (i32.mul (local.get $q) (local.get $k)) (i32.const 2))))
        (local.set $count (i32.const 0))
        (local.set $c (local.get $list))
        (block $candidatesDone
          (loop $candidates
            (br_if $candidatesDone (i32.ge_u (local.get $c) (local.get $end)))
            (local.set $p (i32.load (local.get $c)))
            (local.set $row
              (i32.load (i32.add (local.get $rowOf) (i32.shl (local.get $p) (i32.const 2)))))
            (if (i32.ne (local.get $row) (local.get $self))
              (then
                (local.set $cv
                  (i32.add (local.get $values) (i32.mul (local.get $p) (local.get $stride))))
                (local.set $sum (f64.const 0))
                (local.set $d (i32.const 0))
                (block $dimsDone
                  (loop $dims
                    (br_if $dimsDone (i32.ge_u (local.get $d) (local.get $stride)))
                    (local.set $diff
                      (f64.sub
                        (f64.promote_f32 (f32.load (i32.add (local.get $cv) (local.get $d))))
                        (f64.promote_f32 (f32.load (i32.add (local.get $qv) (local.get $d))))))
                    (local.set $sum
                      (f64.add (local.get $sum) (f64.mul (local.get $diff) (local.get $diff))))
                    (local.set $d (i32.add (local.get $d) (i32.const 4)))
                    (br $dims)))
                (local.set $count
                  (call $rank (local.get $rows) (local.get $distances) (local.get $count)
                    (local.get $k) (local.get $row) (local.get $sum)))))
            (local.set $c (i32.add (local.get $c) (i32.const 4)))
            (br $candidates)))
        (i32.store (i32.add (local.get $outCounts) (i32.shl (local.get $q) (i32.const 2)))
          (local.get $count))
        (local.set $q (i32.add (local.get $q) (i32.const 1)))
        (br $queries))))

  ;; Inserts (row, distance) into a list of n entries (int32 rows, float64 distances) ranked
  ;; nearest first, equal distances lowest row first, holding at most k; returns the new count.
  (func $rank
    (param $rows i32) (param $distances i32) (param $n i32) (param $k i32) (param $row i32)
    (param $distance f64) (result i32)
    (local $at i32) (local $kept f64)
    (local.set $at (local.get $n))
    (if (i32.eq (local.get $n) (local.get $k))
      (then
        (local.set $kept
          (f64.load
            (i32.add (local.get $distances)
              (i32.shl (i32.sub (local.get $k) (i32.const 1)) (i32.const 3)))))
        (if
          (i32.or (f64.lt (local.get $kept) (local.get $distance))
            (i32.and (f64.eq (local.get $kept) (local.get $distance))
              (i32.lt_s
                (i32.load
                  (i32.add (local.get $rows)
                    (i32.shl (i32.sub (local.get $k) (i32.const 1)) (i32.const 2))))
                (local.get $row))))
          (then (return (local.get $n))))
        (local.set $at (i32.sub (local.get $k) (i32.const 1)))))
    (block $placed
      (loop $shift
        (br_if $placed (i32.eqz (local.get $at)))
        (local.set $kept
          (f64.load
            (i32.add (local.get $distances)
              (i32.shl (i32.sub (local.get $at) (i32.const 1)) (i32.const 3)))))
        (br_if $placed
          (i32.eqz
            (i32.or (f64.gt (local.get $kept) (local.get $distance))
              (i32.and (f64.eq (local.get $kept) (local.get $distance))
                (i32.gt_s
                  (i32.load
                    (i32.add (local.get $rows)
                      (i32.shl (i32.sub (local.get $at) (i32.const 1)) (i32.const 2))))
                  (local.get $row))))))
        (f64.store
          (i32.add (local.get $distances) (i32.shl (local.get $at) (i32.const 3)))
          (local.get $kept))
        (i32.store
          (i32.add (local.get $rows) (i32.shl (local.get $at) (i32.const 2)))
          (i32.load
            (i32.add (local.get $rows)
              (i32.shl (i32.sub (local.get $at) (i32.const 1)) (i32.const 2)))))
        (local.set $at (i32.sub (local.get $at) (i32.const 1)))
        (br $shift)))
    (f64.store (i32.add (local.get $distances) (i32.shl (local.get $at) (i32.const 3)))
      (local.get $distance))
    (i32.store (i32.add (local.get $rows) (i32.shl (local.get $at) (i32.const 2)))
      (local.get $row))
    (i32.add (local.get $n) (i32.lt_u (local.get $n) (local.get $k))))

  ;; dst[c][r] = src[r][c] for r in [r0, r1), c in [c0, c1)
  (func $scalar
    (param $src i32) (param $dst i32) (param $rows i32) (param $cols i32)
    (param $r0 i32) (param $r1 i32) (param $c0 i32) (param $c1 i32)
    (local $r i32) (local $c i32)
    (local.set $r (local.get $r0))
    (block $rowsDone
      (loop $rowLoop
        (br_if $rowsDone (i32.ge_u (local.get $r) (local.get $r1)))
        (local.set $c (local.get $c0))
        (block $colsDone
          (loop $colLoop
            (br_if $colsDone (i32.ge_u (local.get $c) (local.get $c1)))
            (f32.store
              (i32.add (local.get $dst)
                (i32.shl
                  (i32.add (i32.mul (local.get $c) (local.get $rows)) (local.get $r))
                  (i32.const 2)))
              (f32.load
                (i32.add (local.get $src)
                  (i32.shl
                    (i32.add (i32.mul (local.get $r) (local.get $cols)) (local.get $c))
                    (i32.const 2)))))
            (local.set $c (i32.add (local.get $c) (i32.const 1)))
            (br $colLoop)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $rowLoop))))
)
