set -e
D=mnist:/work/mnist
S0=$(date +%s)
jsynth train --model dcgan --conditional --data $D --workdir /tmp/final-gan --batch-size 64 --set width=16 --steps 1000000 --time-limit 12m --set progress=false --set log_every=100 --set sample_every=1000000 --set checkpoint_every=1000000
S1=$(date +%s)
jsynth eval --workdir /tmp/final-gan --data $D --json /tmp/final-gan/eval.json
S2=$(date +%s)
jsynth train --model convvae --conditional --data $D --workdir /tmp/final-vae --batch-size 128 --steps 1000000 --time-limit 8m --set progress=false --set log_every=100 --set sample_every=1000000 --set checkpoint_every=1000000
S3=$(date +%s)
jsynth eval --workdir /tmp/final-vae --data $D --json /tmp/final-vae/eval.json --set nll_rows=0
S4=$(date +%s)
echo "gan train $((S1-S0)) eval $((S2-S1)) vae train $((S3-S2)) eval $((S4-S3))"
