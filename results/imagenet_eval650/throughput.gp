set encoding utf8
set terminal pngcairo noenhanced size 1024,640
set output 'throughput.png'
set title 'ImageNet images.tar: throughput against the batch size (650 images)'
set xlabel 'batch size'
set ylabel 'samples per second'
set grid
set key outside right top box
set logscale x 10
plot 'throughput.dat' index 0 using 1:2 with linespoints linewidth 2 pointsize 0.6 title 'full, 1 thread', \
     '' index 1 using 1:2 with linespoints linewidth 2 pointsize 0.6 title 'max_prob_calibrated, 1 thread', \
     '' index 2 using 1:2 with linespoints linewidth 2 pointsize 0.6 title 'full, 2 threads', \
     '' index 3 using 1:2 with linespoints linewidth 2 pointsize 0.6 title 'max_prob_calibrated, 2 threads'
