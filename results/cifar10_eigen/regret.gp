set encoding utf8
set terminal pngcairo noenhanced size 1024,640
set output 'regret.png'
set title 'CIFAR-10 test.tar: DEE regret per inference against the best rule in hindsight'
set xlabel 'inferences'
set ylabel 'average regret per inference'
set grid
set key outside right top box
set logscale x 10
plot 'regret.dat' index 0 using 1:2 with linespoints linewidth 2 pointsize 0.6 title 'dee', \
     '' index 1 using 1:2 with linespoints linewidth 2 pointsize 0.6 title 'dee_online'
