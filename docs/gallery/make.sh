#!/usr/bin/env bash
# Regenerates every PNG of docs/gallery/ from the sweep scripts, full scale unless noted,
# from the repository root: docs/gallery/make.sh [OUT]  (OUT: where the runs go, out/gallery).
# MNIST comes from $JAXINIT_DATA or is downloaded. About 75 minutes on 2 CPU cores (lr_transfer about 12, its Transformer about 36).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-out/gallery}
py=${PYTHON:-.venv/bin/python}
gallery=docs/gallery
run() { rm -rf "$out/$1" && "$py" -m "sweeps.$1" --out "$out/$1" "${@:2}" > "$out/$1.log"; }
mkdir -p "$out"

run seed_histograms
cp "$out/seed_histograms/figures/histograms.png" "$gallery/seed_histograms.png"
cp "$out/seed_histograms/figures/pre_var.png" "$gallery/seed_variance_vs_theory.png"
cp "$out/seed_histograms/figures/grad_var.png" "$gallery/seed_grad_variance.png"

run edge_of_chaos
cp "$out/edge_of_chaos/phase-tanh.png" "$gallery/edge_of_chaos_tanh.png"

run big_grid --batch-size 200 --width 64 --seeds 4  # reduced: the full grid is an accelerator's job
cp "$out/big_grid/figures/heatmap.png" "$gallery/big_grid_heatmap.png"
cp "$out/big_grid/figures/pre_var.png" "$gallery/big_grid_variance.png"

run selu_self_normalizing
cp "$out/selu_self_normalizing/moments.png" "$gallery/selu_moments.png"

run mnist_init_comparison
cp "$out/mnist_init_comparison/loss.png" "$gallery/mnist_loss.png"

run circles
cp "$out/circles/boundaries.png" "$gallery/circles_boundaries.png"

run keras_dense256
cp "$out/keras_dense256/histograms-batch1000.png" "$gallery/keras_dense256.png"
run coord_check
cp "$out/coord_check/coord_check.png" "$gallery/coord_check.png"

run lr_transfer
cp "$out/lr_transfer/lr_transfer.png" "$gallery/lr_transfer.png"
# the zoo's Transformer, any model's μP; about 1 and 36 minutes (lr_transfer: widths 64 to 512,
# 40 CPU-minutes, most of them the 512-wide models' 0.8 s steps)
run_as() { rm -rf "$out/$1" && "$py" -m "sweeps.$2" --out "$out/$1" "${@:3}" > "$out/$1.log"; }
run_as coord_check_transformer coord_check --model transformer --quick --learning-rate 0.01
cp "$out/coord_check_transformer/coord_check.png" "$gallery/coord_check_transformer.png"
run_as lr_transfer_transformer lr_transfer --model transformer --seeds 1 --steps 100
cp "$out/lr_transfer_transformer/lr_transfer.png" "$gallery/lr_transfer_transformer.png"

run trainability  # about 6 minutes of CPU (3.5 on 2 cores)
cp "$out/trainability/trainability.png" "$gallery/trainability.png"
run dks_tat  # about 5 minutes on 2 cores
cp "$out/dks_tat/dks_tat.png" "$gallery/dks_tat.png"

run model_depth  # about 2 minutes with a cold compilation cache (1 min 43 s alone on 2 cores)
cp "$out/model_depth/resnet_depth.png" "$gallery/model_resnet_depth.png"
cp "$out/model_depth/cnn_depth.png" "$gallery/model_cnn_depth.png"
cp "$out/model_depth/cnn_modes.png" "$gallery/model_cnn_modes.png"
run ntk_width  # about a minute (60 s alone, cold cache)
cp "$out/ntk_width/ntk_width.png" "$gallery/ntk_width.png"
chmod 644 "$gallery"/*.png
echo "gallery regenerated from $out"
