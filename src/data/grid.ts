/** Tiles square RGB images into one grid image (pure). */
export function tileImages(images: Uint8Array[], size: number, columns: number, pad = 2, background = 24): { rgb: Uint8Array; width: number; height: number } {
  const rows = Math.ceil(images.length / columns)
  const width = pad + columns * (size + pad)
  const height = pad + rows * (size + pad)
  const rgb = new Uint8Array(width * height * 3).fill(background)
  images.forEach((img, i) => {
    const x0 = pad + (i % columns) * (size + pad)
    const y0 = pad + Math.floor(i / columns) * (size + pad)
    for (let r = 0; r < size; r++) rgb.set(img.subarray(r * size * 3, (r + 1) * size * 3), ((y0 + r) * width + x0) * 3)
  })
  return { rgb, width, height }
}
