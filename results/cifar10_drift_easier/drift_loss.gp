set encoding utf8
set terminal pngcairo noenhanced size 1024,640
set output 'drift_loss.png'
set title 'CIFAR-10 test.tar, a corrupted copy first: accuracy points lost against the final head, per 500 samples (the same images clean (before: corrupted, noise 0.08, blur 1) from 5000 on)'
set xlabel 'sample'
set ylabel 'points lost'
set grid
set key outside right top box
plot 'drift_loss.dat' index 0 using 1:2 with linespoints linewidth 2 pointsize 0.6 title 'max_prob_calibrated', \
     '' index 1 using 1:2 with linespoints linewidth 2 pointsize 0.6 title 'dee', \
     '' index 2 using 1:2 with linespoints linewidth 2 pointsize 0.6 title 'oracle'
