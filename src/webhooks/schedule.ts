/**
 * How long to wait after a failed attempt before the next one. The first retry comes 5 s after the first attempt
 * fails, the second 25 s after that (30 s in all), then the waits grow to 8 h; the last attempt is made about 23 h
 * after the first, and a delivery that fails it too is given up as `failed`.
 */
export const RETRY_DELAYS_MS: readonly number[] = [
  5_000, 25_000, 120_000, 600_000, 1_800_000, 3_600_000, 7_200_000, 14_400_000, 28_800_000, 28_800_000
]
