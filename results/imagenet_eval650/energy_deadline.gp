set encoding utf8
set terminal pngcairo noenhanced size 1024,640
set output 'energy_deadline.png'
set title 'ImageNet images.tar: energy per sample against the deadline (model of amd_phenom_ii_x4_940.json)'
set xlabel 'deadline (ms)'
set ylabel 'energy per sample (mJ)'
set grid
set key outside right top box
plot 'energy_deadline.dat' index 0 using 1:2 with linespoints linewidth 2 pointsize 0.6 title 'full_fmax', \
     '' index 1 using 1:2 with linespoints linewidth 2 pointsize 0.6 title 'predictive_fmax', \
     '' index 2 using 1:2 with linespoints linewidth 2 pointsize 0.6 title 'predictive_dvfs'
