/**
 * IAN losses (paper eq. 3-5; reference train_IAN.py). Each returns a scalar
 * averaged over the batch; sums of terms are as written in the paper.
 */
import * as tf from '@tensorflow/tfjs'

/** Mean over the batch of -log softmax(logits)[label]. */
export function crossEntropy(logits: tf.Tensor2D, label: number): tf.Scalar {
  return tf.tidy(() => tf.neg(tf.mean(tf.slice(tf.logSoftmax(logits), [0, label], [-1, 1]))) as tf.Scalar)
}

/**
 * Discriminator loss. Ternary (eq. 4): -log D_real(X) - log D_gen(G(Z)) - log D_rec(G(E(X))).
 * Binary (VAE/GAN): two classes, samples and reconstructions are both "fake" (class 1).
 */
export function discriminatorAdversarialLoss(
  kind: 'ternary' | 'binary',
  real: tf.Tensor2D,
  generated: tf.Tensor2D,
  reconstructed: tf.Tensor2D,
): tf.Scalar {
  return tf.tidy(() => {
    const recLabel = kind === 'ternary' ? 2 : 1
    return tf.addN([crossEntropy(real, 0), crossEntropy(generated, 1), crossEntropy(reconstructed, recLabel)]) as tf.Scalar
  })
}

/** Generator loss (eq. 5): -log D_real(G(Z)) - log D_real(G(E(X))); the same for both kinds. */
export function generatorAdversarialLoss(generated: tf.Tensor2D, reconstructed: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => tf.add(crossEntropy(generated, 0), crossEntropy(reconstructed, 0)) as tf.Scalar)
}

/** L_img: mean absolute pixel difference. */
export function pixelLoss(x: tf.Tensor, reconstruction: tf.Tensor): tf.Scalar {
  return tf.tidy(() => tf.mean(tf.abs(tf.sub(x, reconstruction))) as tf.Scalar)
}

/** L_feature: mean over D's conv layers of the mean squared activation difference. */
export function featureLoss(real: tf.Tensor[], reconstructed: tf.Tensor[]): tf.Scalar {
  return tf.tidy(() => {
    const terms = real.map((f, i) => tf.mean(tf.squaredDifference(f, reconstructed[i]!)))
    return tf.div(tf.addN(terms), terms.length) as tf.Scalar
  })
}

/** KL(N(mu, exp(ls)^2) || N(0, I)) as in the reference: -0.5 * mean(1 + 2 ls - mu^2 - exp(2 ls)). */
export function klLoss(mu: tf.Tensor, logSigma: tf.Tensor): tf.Scalar {
  return tf.tidy(
    () =>
      tf.mul(-0.5, tf.mean(tf.sub(tf.sub(tf.add(1, tf.mul(2, logSigma)), tf.square(mu)), tf.exp(tf.mul(2, logSigma))))) as tf.Scalar,
  )
}
