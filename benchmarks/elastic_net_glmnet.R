# PredictDB's nested-CV elastic net with R glmnet, for benchmarks/elastic_net.py.
#
# Usage: Rscript elastic_net_glmnet.R DIR
# DIR (written by elastic_net.py, all little-endian, matrices column-major):
#   meta.txt   "n n_genes k_outer inner_k alpha nlambda"
#   outer.bin  int32 [n], outer fold 1..K of each individual
#   inner.bin  int32 [n, K+1], inner fold id 1..inner_k of each individual in problem c
#              (c <= K: rows outside outer fold c; c = K+1: all rows), 0 = not in it.
#              These are the JAX side's fold ids (fold_masks), so both use the same folds.
#   p.bin      int32 [n_genes], variants per gene
#   y.bin      float64 [n, n_genes]
#   x_<g>.bin  float64 [n, p_g] dosages of gene g (1-based)
# Writes to DIR:
#   pred.bin       float64 [n, n_genes] held-out predictions (outer fold c by the model
#                  trained without it, at lambda.min)
#   seconds.bin    float64 [n_genes] elapsed seconds in cv.glmnet + predict per gene
#                  (proc.time around them only: no R start-up, no file reading)
#   lambda.bin     float64 [K+1, n_genes] lambda.min per problem (K+1: the final model)
#   lambda_max.bin float64 [K+1, n_genes] first lambda of glmnet's path per problem
#   n_lambda.bin   int32 [K+1, n_genes] length of glmnet's path per problem
#
# Protocol (PredictDB, nested_cv_elastic_net_perf + the final model): for each outer fold,
# cv.glmnet(x_train, y_train, alpha, nfolds = inner_k, foldid, nlambda, type.measure = "mse")
# and predict(fit, x_test, s = "lambda.min"); then cv.glmnet on all rows (the weights model).
# glmnet defaults otherwise: standardize = TRUE, thresh = 1e-7,
# lambda.min.ratio = ifelse(nobs < nvars, 0.01, 1e-4).
suppressPackageStartupMessages(library(glmnet))

args <- commandArgs(trailingOnly = TRUE)
dir <- args[1]
meta <- scan(file.path(dir, "meta.txt"), quiet = TRUE)
n <- meta[1]; n_genes <- meta[2]; k_outer <- meta[3]; inner_k <- meta[4]
alpha <- meta[5]; nlambda <- meta[6]

read_bin <- function(name, what, count, size) {
  con <- file(file.path(dir, name), "rb")
  on.exit(close(con))
  readBin(con, what, n = count, size = size, endian = "little")
}
write_bin <- function(name, v, size) {
  con <- file(file.path(dir, name), "wb")
  on.exit(close(con))
  writeBin(v, con, size = size, endian = "little")
}

outer <- read_bin("outer.bin", "integer", n, 4)
inner <- matrix(read_bin("inner.bin", "integer", n * (k_outer + 1), 4), n, k_outer + 1)
p <- read_bin("p.bin", "integer", n_genes, 4)
y_all <- matrix(read_bin("y.bin", "double", n * n_genes, 8), n, n_genes)

pred <- matrix(0, n, n_genes)
seconds <- numeric(n_genes)
lam_min <- matrix(NA_real_, k_outer + 1, n_genes)
lam_max <- matrix(NA_real_, k_outer + 1, n_genes)
n_lam <- matrix(0L, k_outer + 1, n_genes)

for (g in seq_len(n_genes)) {
  x <- matrix(read_bin(sprintf("x_%d.bin", g), "double", n * p[g], 8), n, p[g])
  y <- y_all[, g]
  t0 <- proc.time()[["elapsed"]]
  for (c in seq_len(k_outer + 1)) {
    rows <- inner[, c] > 0
    fit <- cv.glmnet(x[rows, , drop = FALSE], y[rows], alpha = alpha, nfolds = inner_k,
                     foldid = inner[rows, c], nlambda = nlambda, type.measure = "mse")
    if (c <= k_outer) {
      test <- outer == c
      pred[test, g] <- predict(fit, x[test, , drop = FALSE], s = "lambda.min")[, 1]
    }
    lam_min[c, g] <- fit$lambda.min
    lam_max[c, g] <- fit$lambda[1]
    n_lam[c, g] <- length(fit$lambda)
  }
  seconds[g] <- proc.time()[["elapsed"]] - t0
}

write_bin("pred.bin", as.double(pred), 8)
write_bin("seconds.bin", as.double(seconds), 8)
write_bin("lambda.bin", as.double(lam_min), 8)
write_bin("lambda_max.bin", as.double(lam_max), 8)
write_bin("n_lambda.bin", as.integer(n_lam), 4)
